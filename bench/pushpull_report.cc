#include "bench/pushpull_report.h"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

namespace cairn {
namespace {

std::string SizeName(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= 1024 && bytes % 1024 == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

// A workload of a result, with the name it is shown and stored under.
struct Workload {
  const char* label;
  const char* key;
  const Measurement PushPullResult::*field;
};

constexpr Workload kWorkloads[] = {
    {"raw", "raw", &PushPullResult::raw},
    {"push", "push", &PushPullResult::push},
    {"pull", "pull", &PushPullResult::pull},
    {"push+pull", "push_pull", &PushPullResult::push_pull},
};

std::string Row(const PushPullResult& r, const Workload& w) {
  const Measurement& m = r.*w.field;
  const std::string ratio = w.field == &PushPullResult::raw ? "-" : fmt::format("{:.2f}", r.RatioToRaw(m));
  return fmt::format("{:<7} {:>8}  {:<10} {:>8.3f} {:>7} {:>10.1f} {:>10.1f} {:>9} {:>6.2f} {:>6.2f}\n",
                     r.config.ToString(), SizeName(r.value_bytes), w.label, m.gbps(), ratio, m.p50_us(), m.p99_us(),
                     m.calls, m.self_cores(), m.other_cores());
}

nlohmann::json MeasurementJson(const Measurement& m) {
  return {{"gbps", m.gbps()},
          {"bytes", m.bytes},
          {"calls", m.calls},
          {"seconds", m.seconds},
          {"p50_us", m.p50_us()},
          {"p99_us", m.p99_us()},
          {"self_cores", m.self_cores()},
          {"other_cores", m.other_cores()}};
}

nlohmann::json ResultJson(const PushPullResult& r) {
  nlohmann::json j{{"config", r.config.ToString()},
                   {"servers", r.config.servers},
                   {"workers", r.config.workers},
                   {"value_bytes", r.value_bytes}};
  for (const Workload& w : kWorkloads) j[w.key] = MeasurementJson(r.*w.field);
  j["ratio_to_raw"] = {{"push", r.RatioToRaw(r.push)},
                       {"pull", r.RatioToRaw(r.pull)},
                       {"push_pull", r.RatioToRaw(r.push_pull)}};
  return j;
}

// Other processes' load competes for the same cores: say so when it was
// large enough to move the ratios.
std::string BusyMachineNote(const std::vector<PushPullResult>& results) {
  constexpr double kBusyCores = 0.2;
  double worst = 0;
  for (const PushPullResult& r : results) {
    for (const Workload& w : kWorkloads) worst = std::max(worst, (r.*w.field).other_cores());
  }
  if (worst < kBusyCores) return "";
  return fmt::format("note: other processes kept up to {:.2f} cores busy during a measurement (column 'other');\n"
                     "      results measured under that load understate what the machine can do.\n", worst);
}

}  // namespace

std::string FormatPushPullTable(const std::vector<PushPullResult>& results) {
  std::string out = fmt::format("{:<7} {:>8}  {:<10} {:>8} {:>7} {:>10} {:>10} {:>9} {:>6} {:>6}\n", "config",
                                "value", "workload", "GB/s", "vs raw", "p50 us", "p99 us", "calls", "cpu", "other");
  for (const PushPullResult& r : results) {
    for (const Workload& w : kWorkloads) out += Row(r, w);
  }
  out += BusyMachineNote(results);
  out += fmt::format("\n{:<7} {:>8}  {:>9} {:>9} {:>14}\n", "config", "value", "push/raw", "pull/raw", "push+pull/raw");
  for (const PushPullResult& r : results) {
    out += fmt::format("{:<7} {:>8}  {:>9.2f} {:>9.2f} {:>14.2f}\n", r.config.ToString(), SizeName(r.value_bytes),
                       r.RatioToRaw(r.push), r.RatioToRaw(r.pull), r.RatioToRaw(r.push_pull));
  }
  return out;
}

nlohmann::json PushPullJson(const PushPullOptions& o, const std::vector<PushPullResult>& results) {
  nlohmann::json configs = nlohmann::json::array();
  for (const ClusterShape& c : o.configs) configs.push_back(c.ToString());
  nlohmann::json j;
  j["options"] = {{"sizes", o.value_bytes},
                  {"configs", configs},
                  {"seconds", o.timing.seconds},
                  {"warmup_seconds", o.timing.warmup_seconds},
                  {"rounds", o.rounds},
                  {"rewarm_seconds", o.rewarm_seconds},
                  {"event_loop_threads", o.event_loop_threads},
                  {"learning_rate", o.learning_rate}};
  j["units"] = {{"gbps", "1e9 value bytes per second, all workers"}, {"latency", "microseconds per call"}};
  j["results"] = nlohmann::json::array();
  for (const PushPullResult& r : results) j["results"].push_back(ResultJson(r));
  return j;
}

Status WritePushPullJson(const PushPullOptions& options, const std::vector<PushPullResult>& results,
                         const std::string& path) {
  std::ofstream f(path);
  if (!f) return Unavailable("cannot open '" + path + "' for writing");
  f << PushPullJson(options, results).dump(2) << "\n";
  if (!f.flush()) return Unavailable("cannot write '" + path + "'");
  return Status::OK();
}

}  // namespace cairn
