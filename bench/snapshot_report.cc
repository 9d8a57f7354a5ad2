#include "bench/snapshot_report.h"

#include <algorithm>

#include <fmt/format.h>

namespace cairn {

double SnapshotMedian(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

namespace {

using Round = const SnapshotRound&;

struct Column {
  const char* header;
  const char* key;  // in the JSON
  double (*get)(Round);
  double scale;     // shown as value * scale
  int precision;
};

const std::vector<Column> kStall = {
    {"Begin ms", "begin_seconds", [](Round r) -> double { return r.begin_seconds; }, 1e3, 1},
    {"copy ms", "copy_seconds", [](Round r) -> double { return r.copy_seconds; }, 1e3, 1},
    {"memcpy-fresh ms", "memcpy_fresh_seconds", [](Round r) -> double { return r.memcpy_fresh; }, 1e3, 1},
    {"memcpy-touched ms", "memcpy_prefaulted_seconds", [](Round r) -> double { return r.memcpy_prefaulted; }, 1e3, 1},
    {"stall/fresh", "stall_over_memcpy_fresh", [](Round r) -> double { return r.stall_over_memcpy_fresh(); }, 1, 2},
    {"stall/touched", "stall_over_memcpy_prefaulted",
     [](Round r) -> double { return r.stall_over_memcpy_prefaulted(); }, 1, 2},
    {"faults", "begin_minor_faults", [](Round r) -> double { return r.begin_faults; }, 1, 0},
    {"push ms", "push_seconds", [](Round r) -> double { return r.push_seconds; }, 1e3, 1},
    {"push in cut ms", "push_in_cut_seconds", [](Round r) -> double { return r.push_in_cut_seconds; }, 1e3, 1},
};
const std::vector<Column> kWrite = {
    {"write s", "write_seconds", [](Round r) -> double { return r.write_seconds; }, 1, 3},
    {"write GB/s", "write_gbps", [](Round r) -> double { return r.write_gbps(); }, 1, 3},
    {"e2e s", "total_seconds", [](Round r) -> double { return r.total_seconds; }, 1, 3},
    {"e2e GB/s", "end_to_end_gbps", [](Round r) -> double { return r.end_to_end_gbps(); }, 1, 3},
    {"raw write GB/s", "raw_write_gbps", [](Round r) -> double { return r.raw_write_gbps(); }, 1, 3},
    {"write/raw", "write_over_raw", [](Round r) -> double { return r.write_over_raw(); }, 1, 2},
    {"faults", "finish_minor_faults", [](Round r) -> double { return r.finish_faults; }, 1, 0},
    {"other cores", "other_cores", [](Round r) -> double { return r.other_cores; }, 1, 2},
};
const std::vector<Column> kRestore = {
    {"restore s", "restore_seconds", [](Round r) -> double { return r.restore_seconds; }, 1, 3},
    {"restore GB/s", "restore_gbps", [](Round r) -> double { return r.restore_gbps(); }, 1, 3},
    {"rollback GB/s", "rollback_gbps", [](Round r) -> double { return r.rollback_gbps(); }, 1, 3},
    {"raw read GB/s", "raw_read_gbps", [](Round r) -> double { return r.raw_read_gbps(); }, 1, 3},
    {"restore/raw", "restore_over_raw", [](Round r) -> double { return r.restore_over_raw(); }, 1, 2},
    {"faults", "restore_minor_faults", [](Round r) -> double { return r.restore_faults; }, 1, 0},
};

double MedianOf(const std::vector<SnapshotRound>& rounds, const Column& c) {
  std::vector<double> v;
  for (const SnapshotRound& r : rounds) v.push_back(c.get(r));
  return SnapshotMedian(v);
}

std::string FormatTable(const char* title, const std::vector<Column>& columns, const std::vector<SnapshotRound>& rounds) {
  std::string out = fmt::format("{}\n{:<8}", title, "round");
  for (const Column& c : columns) out += fmt::format(" {:>17}", c.header);
  auto row = [&](const std::string& label, auto value) {
    out += fmt::format("\n{:<8}", label);
    for (const Column& c : columns) out += fmt::format(" {:>17.{}f}", value(c) * c.scale, c.precision);
  };
  for (size_t i = 0; i < rounds.size(); ++i) {
    row(std::to_string(i + 1), [&](const Column& c) { return c.get(rounds[i]); });
  }
  row("median", [&](const Column& c) { return MedianOf(rounds, c); });
  return out + "\n\n";
}

std::string FormatTargets(const std::vector<SnapshotRound>& rounds) {
  auto median = [&](double (SnapshotRound::*f)() const) {
    std::vector<double> v;
    for (const SnapshotRound& r : rounds) v.push_back((r.*f)());
    return SnapshotMedian(v);
  };
  auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
  const double w = median(&SnapshotRound::write_over_raw), rr = median(&SnapshotRound::restore_over_raw);
  const double sf = median(&SnapshotRound::stall_over_memcpy_fresh);
  const double st = median(&SnapshotRound::stall_over_memcpy_prefaulted);
  return fmt::format(
      "targets (medians):\n"
      "  (a) snapshot write >= 70% of raw RocksDB write: {:.0f}% ({})\n"
      "  (b) restore >= 70% of raw RocksDB read:          {:.0f}% ({})\n"
      "  (c) stall <= 2x memcpy of the shards: {:.2f}x a memcpy into fresh pages ({}), "
      "{:.2f}x a memcpy between touched buffers ({})\n",
      100 * w, verdict(w >= 0.7), 100 * rr, verdict(rr >= 0.7), sf, verdict(sf <= 2), st, verdict(st <= 2));
}

constexpr char kNotes[] =
    "stall: Begin = Saver::Begin as the chief waits for it (the ratios use it); copy = the slowest server's copy.\n"
    "  push / push in cut (sparse tables): one push of 65,536 rows spread over the table, before Begin and at once\n"
    "  after it (while the server copies the table's records, saving each row the push reaches first).\n"
    "  memcpy-fresh: one thread copies the same bytes into a new mmap (first touch of every page, as a copy that\n"
    "  allocates its destination may pay); memcpy-touched: between two buffers already touched. Medians of 3.\n"
    "write: the slowest server's WriteServerSnapshot (xxh3, SST file, fsync, ingest); e2e: Begin to committed\n"
    "  manifest. raw: MeasureRawRocksDb of each server's bytes, one thread per server at once (the slowest);\n"
    "  its read goes into a buffer touched before its clock starts.\n"
    "restore: Saver::Restore onto a fresh cluster (new servers; not timed: their start and variable init),\n"
    "  whose shards hold only initial values: read in place. rollback: Saver::Restore of the same snapshot onto\n"
    "  the trained original cluster: staged (into the last snapshot's copy buffers), then applied. Reads come\n"
    "  from the page cache (the data was just written), in restore, rollback and raw. faults: this process's.\n"
    "round 1 is the process's first snapshot and restore: every page they allocate is new (2 MiB huge pages\n"
    "  for blocks >= 4 MiB); later snapshots copy into the previous one's buffers (ServerOptions::\n"
    "  reuse_copy_buffers, unless --no-reuse-copy-buffers). GB/s = 1e9 value+slot bytes per second, all servers.\n";

}  // namespace

std::string FormatSnapshotReport(const std::vector<SnapshotRound>& rounds) {
  return FormatTable("stall", kStall, rounds) + FormatTable("write", kWrite, rounds) +
         FormatTable("restore", kRestore, rounds) + FormatTargets(rounds) + "\n" + kNotes;
}

nlohmann::json SnapshotRoundsJson(const SnapshotBenchOptions& o, const MachineNote& m, const std::vector<SnapshotRound>& rounds) {
  nlohmann::json j;
  j["options"] = {{"servers", o.servers},         {"param_mib", o.param_mib},     {"optimizer", o.optimizer},
                  {"rounds", o.rounds},           {"variables", kSnapshotBenchVariables},      {"chunk_bytes", kSnapshotBenchChunkBytes},
                  {"sparse_rows", o.sparse_rows}, {"sparse_dim", o.sparse_dim},
                  {"reuse_copy_buffers", o.reuse_copy_buffers}};
  j["machine"] = {{"cores", m.cores}, {"cpu", m.cpu},          {"work_dir", m.work_dir},
                  {"device", m.device}, {"fs_type", m.fs_type}, {"mount_point", m.mount_point}};
  j["rounds"] = nlohmann::json::array();
  for (const SnapshotRound& r : rounds) {
    nlohmann::json jr{{"step", r.step},
                      {"bytes", r.bytes},
                      {"raw_write_seconds", r.raw_write_seconds},
                      {"raw_read_seconds", r.raw_read_seconds},
                      {"rollback_seconds", r.rollback_seconds}};
    for (const auto* table : {&kStall, &kWrite, &kRestore}) {
      for (const Column& c : *table) jr[c.key] = c.get(r);
    }
    j["rounds"].push_back(jr);
  }
  for (const auto* table : {&kStall, &kWrite, &kRestore}) {
    for (const Column& c : *table) j["median"][c.key] = MedianOf(rounds, c);
  }
  j["bytes"] = rounds.empty() ? 0 : rounds[0].bytes;
  j["units"] = {{"gbps", "1e9 value and slot bytes per second, all servers"}, {"seconds", "wall seconds"}};
  return j;
}

}  // namespace cairn
