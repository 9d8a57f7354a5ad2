#include "bench/sparse_bench.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "bench/raw_socket_bench.h"
#include "bench/snapshot_bench.h"
#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/local_cluster.h"
#include "ps/sparse_table.h"
#include "worker/ps_client.h"

namespace cairn {
namespace {

constexpr char kTable[] = "bench/emb";

SparseTableSpec BenchTable(int32_t dim) {
  SparseTableSpec t;
  t.name = kTable;
  t.dim = dim;
  t.init.kind = InitKind::kUniform;
  t.init.seed = 1;
  return t;
}

OptimizerSpec BenchAdagrad() {
  OptimizerSpec o;
  o.kind = "adagrad";
  o.learning_rate = 1e-6;  // rows stay finite however long the bench runs
  return o;
}

// Worker w's ids: distinct across workers, well spread.
Tensor WorkerIds(int worker, int64_t n) {
  Tensor ids = Tensor::Uninitialized(DType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) {
    ids.data<int64_t>()[i] = static_cast<int64_t>(MixId((int64_t{worker} << 40) + i) >> 1);
  }
  return ids;
}

uint64_t CallBytes(int64_t ids, int32_t dim) { return static_cast<uint64_t>(ids) * (8 + 4 * static_cast<uint64_t>(dim)); }

PsClientOptions ClientOptions(int worker) {
  PsClientOptions o;
  o.worker_id = worker;
  o.timeout = std::chrono::milliseconds(30000);
  return o;
}

class SparseWorker {
 public:
  SparseWorker(EventLoop& loop, const LocalCluster& cluster, int id, const SparsePoint& p)
      : transport_(loop, cluster.endpoints(), cluster.ClientOptions(id == 0 ? PeerRole::kChief : PeerRole::kWorker, id)),
        client_(&transport_, ClientOptions(id)) {
    ids_ = WorkerIds(id, p.ids);
    pull_[kTable] = ids_;
    Tensor grads = Tensor::Uninitialized(DType::kFloat32, {p.ids, p.dim});
    grads.flat().setConstant(0.5f);
    batch_.sparse_gradients[kTable] = SparseRowsUpdate{ids_, std::move(grads)};
  }
  Status Create(const SparsePoint& p) {
    RETURN_IF_ERROR(client_.Create({}, BenchAdagrad(), TrainingMode{}));
    RETURN_IF_ERROR(client_.CreateSparse({BenchTable(p.dim)}, BenchAdagrad()));
    return client_.Push(batch_);  // every row exists before anything is measured
  }
  Status Pull() {
    ASSIGN_OR_RETURN(auto rows, client_.SparsePull(pull_));
    if (rows.at(kTable).num_elements() != ids_.num_elements() * rows.at(kTable).shape()[1]) {
      return DataLoss("sparse pull returned the wrong rows");
    }
    return Status::OK();
  }
  Status Push() { return client_.Push(batch_); }
  const Tensor& ids() const { return ids_; }

 private:
  AsioTransport transport_;
  PsClient client_;
  Tensor ids_;
  std::map<std::string, Tensor> pull_;
  PushBatch batch_;
};

class SparseCluster {
 public:
  static StatusOr<std::unique_ptr<SparseCluster>> Start(const ClusterShape& config, const SparsePoint& p,
                                                       const SparseBenchOptions& o) {
    std::unique_ptr<SparseCluster> c(new SparseCluster(o.event_loop_threads, p));
    LocalClusterOptions servers;
    servers.servers = config.servers;
    ASSIGN_OR_RETURN(c->cluster_, LocalCluster::Start(c->server_loop_, servers));
    for (int w = 0; w < config.workers; ++w) {
      auto worker = std::make_unique<SparseWorker>(c->worker_loop_, *c->cluster_, w, p);
      RETURN_IF_ERROR(worker->Create(p).WithContext("worker " + std::to_string(w) + " creating the table"));
      c->workers_.push_back(std::move(worker));
    }
    return c;
  }
  StatusOr<Measurement> Measure(Status (SparseWorker::*op)(), const TimedLoopOptions& timing) {
    std::vector<TimedTask> tasks;
    for (auto& w : workers_) tasks.push_back(TimedTask{[w = w.get(), op] { return (w->*op)(); }, CallBytes(point_.ids, point_.dim)});
    return RunTimedLoop(tasks, timing);
  }
  // The bytes worker 0 moves to each server per call (its ids routed).
  std::vector<uint64_t> ServerBytes(int servers) const {
    std::vector<uint64_t> bytes(servers, 0);
    const Tensor& ids = workers_[0]->ids();
    for (int64_t i = 0; i < ids.num_elements(); ++i) bytes[ServerOfId(ids.data<int64_t>()[i], servers)] += CallBytes(1, point_.dim);
    return bytes;
  }

 private:
  SparseCluster(int threads, SparsePoint p) : server_loop_(threads), worker_loop_(threads), point_(p) {}
  EventLoop server_loop_;
  EventLoop worker_loop_;
  const SparsePoint point_;
  std::unique_ptr<LocalCluster> cluster_;
  std::vector<std::unique_ptr<SparseWorker>> workers_;
};

Status AddRound(StatusOr<Measurement> round, const char* name, Measurement* total) {
  if (!round.ok()) return round.status().WithContext(name);
  total->Merge(*round);
  return Status::OK();
}

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace

double SparseResult::RatioToRaw(const Measurement& m) const {
  return raw.gbps() > 0 ? m.gbps() / raw.gbps() : 0.0;
}

double SparseResult::IdsPerSec(const Measurement& m) const {
  return m.seconds > 0 ? static_cast<double>(m.calls) * point.ids / m.seconds : 0.0;
}

StatusOr<std::vector<SparseResult>> RunSparsePullPush(const SparseBenchOptions& o) {
  if (o.rounds < 1) return InvalidArgument("--rounds must be at least 1");
  std::vector<SparseResult> results;
  for (const ClusterShape& config : o.configs) {
    for (const SparsePoint& p : o.points) {
      if (p.ids < 1 || p.dim < 1 || p.dim > SparseLimits{}.max_dim) {
        return InvalidArgument("sparse point (" + std::to_string(p.ids) + " ids, dim " + std::to_string(p.dim) +
                               ") is out of range");
      }
      spdlog::info("bench sparse: {} servers x {} workers, {} ids of dim {} per call", config.servers, config.workers,
                   p.ids, p.dim);
      ASSIGN_OR_RETURN(auto cluster, SparseCluster::Start(config, p, o));
      RawSocketOptions raw_options;
      raw_options.workers = config.workers;
      raw_options.message_bytes = cluster->ServerBytes(config.servers);
      ASSIGN_OR_RETURN(auto raw, RawSocketBench::Start(raw_options));
      SparseResult r;
      r.config = config;
      r.point = p;
      for (int round = 0; round < o.rounds; ++round) {
        TimedLoopOptions t;
        t.seconds = o.timing.seconds / o.rounds;
        t.warmup_seconds = round == 0 ? o.timing.warmup_seconds : o.rewarm_seconds;
        Measurement raw_round, pull_round, push_round;
        RETURN_IF_ERROR(AddRound(raw->Measure(t), "raw socket baseline", &raw_round));
        RETURN_IF_ERROR(AddRound(cluster->Measure(&SparseWorker::Pull, t), "sparse pull", &pull_round));
        RETURN_IF_ERROR(AddRound(cluster->Measure(&SparseWorker::Push, t), "sparse push", &push_round));
        if (raw_round.gbps() > 0) {
          r.pull_ratios.push_back(pull_round.gbps() / raw_round.gbps());
          r.push_ratios.push_back(push_round.gbps() / raw_round.gbps());
        }
        r.raw.Merge(raw_round);
        r.pull.Merge(pull_round);
        r.push.Merge(push_round);
      }
      spdlog::info("  raw {:.3f} GB/s | pull {:.3f} GB/s ({:.2f}), {:.2f} M ids/s | push {:.3f} GB/s ({:.2f}), {:.2f} M ids/s",
                   r.raw.gbps(), r.pull.gbps(), r.PullRatio(), r.IdsPerSec(r.pull) / 1e6, r.push.gbps(),
                   r.PushRatio(), r.IdsPerSec(r.push) / 1e6);
      results.push_back(std::move(r));
    }
  }
  return results;
}

StatusOr<SparseMemoryResult> RunSparseMemory(int64_t rows) {
  SparseMemoryResult m;
  m.rows = rows;
  const uint64_t rss_before = ResidentBytes();
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<SparseTable> table, SparseTable::Create(BenchTable(m.dim), BenchAdagrad()));
  const int64_t batch = 65536;
  std::vector<int64_t> ids(batch);
  std::vector<float> grads(batch * m.dim, 0.5f);
  for (int64_t first = 0; first < rows; first += batch) {
    const int64_t n = std::min(batch, rows - first);
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int64_t>(MixId(first + i) >> 1);
    RETURN_IF_ERROR(table->ApplyGradients(ids.data(), n, grads.data()));
  }
  m.fill_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const SparseTable::Memory mem = table->memory();
  m.payload_bytes = mem.payload_bytes;
  m.allocated_bytes = mem.allocated_bytes;
  const uint64_t rss_after = ResidentBytes();
  m.rss_growth_bytes = rss_after > rss_before ? rss_after - rss_before : 0;
  spdlog::info("bench sparse: {} rows of dim {} (Adagrad): payload {:.1f} MiB, allocated {:.1f} MiB ({:.2f}x), "
               "resident growth {:.1f} MiB ({:.2f}x), filled in {:.1f} s",
               rows, m.dim, m.payload_bytes / 1048576.0, m.allocated_bytes / 1048576.0, m.allocated_over_payload(),
               m.rss_growth_bytes / 1048576.0, m.rss_over_payload(), m.fill_seconds);
  return m;
}

namespace {

StatusOr<std::vector<SparsePoint>> ParsePoints(const std::string& text) {
  std::vector<SparsePoint> points;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t x = item.find('x');
    SparsePoint p;
    try {
      if (x == std::string::npos) throw std::invalid_argument(item);
      size_t used = 0;
      p.ids = std::stoll(item.substr(0, x), &used);
      if (used != x) throw std::invalid_argument(item);
      p.dim = std::stoi(item.substr(x + 1), &used);
      if (used != item.size() - x - 1) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      return InvalidArgument("--points: '" + item + "' is not IDSxDIM (e.g. 65536x16)");
    }
    if (p.ids < 1 || static_cast<uint64_t>(p.ids) > SparseLimits{}.max_ids_per_request || p.dim < 1 ||
        p.dim > SparseLimits{}.max_dim) {
      return InvalidArgument("--points: '" + item + "' is out of range");
    }
    points.push_back(p);
  }
  if (points.empty()) return InvalidArgument("--points: none given");
  return points;
}

nlohmann::json MeasurementJson(const SparseResult& r, const Measurement& m, const std::vector<double>& ratios) {
  return {{"gbps", m.gbps()},
          {"ids_per_sec", r.IdsPerSec(m)},
          {"calls", m.calls},
          {"p50_us", m.p50_us()},
          {"p99_us", m.p99_us()},
          {"ratio_to_raw", MedianRatio(ratios)},
          {"ratio_to_raw_per_round", ratios},
          {"ratio_of_totals", r.RatioToRaw(m)},
          {"self_cores", m.self_cores()},
          {"other_cores", m.other_cores()}};
}

std::string RatioText(const std::vector<double>& ratios) {
  if (ratios.empty()) return "-";
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  return fmt::format("{:.2f} ({:.2f}-{:.2f})", MedianRatio(ratios), *lo, *hi);
}

}  // namespace

void AddSparseBench(CLI::App& bench) {
  CLI::App* c = bench.add_subcommand(
      "sparse", "Sparse pull and push through real servers against raw sockets moving the same bytes, and the memory "
                "of a large table");
  c->add_option("--points", "Unique ids per call x dim, comma-separated")->default_val("4096x16,65536x16,65536x64");
  c->add_option("--configs", "Cluster shapes SxW (servers x workers), comma-separated")->default_val("1x1,2x2");
  c->add_option("--seconds", "Measured seconds per workload and case, over all rounds")->default_val(2.0);
  c->add_option("--rounds", "Interleaved rounds of raw, pull, push per case")->default_val(4);
  c->add_option("--memory-rows", "Rows of the memory measurement's table (0: skip it)")->default_val(10000000);
  c->add_option("--snapshot-rows", "Rows of the tables whose snapshot write, restore and stall are measured "
                                   "(cairn bench snapshot, one Adagrad table of dim 16 on one server), comma-separated; "
                                   "0: skip")
      ->default_val("1000000,10000000");
  c->add_option("--snapshot-rounds", "Rounds of each snapshot measurement")->default_val(2);
  c->add_option("--json", "Also write every result as JSON to this file");
}

int RunSparseBench(CLI::App& bench) {
  if (!bench.got_subcommand("sparse")) return -1;
  const CLI::App& c = *bench.get_subcommand("sparse");
  auto fail = [](const Status& s) {
    spdlog::error("bench sparse failed: {}", s.ToString());
    return 1;
  };
  SparseBenchOptions o;
  StatusOr<std::vector<SparsePoint>> points = ParsePoints(c.get_option("--points")->as<std::string>());
  if (!points.ok()) return fail(points.status());
  o.points = *points;
  o.configs.clear();
  std::stringstream configs(c.get_option("--configs")->as<std::string>());
  for (std::string item; std::getline(configs, item, ',');) {
    StatusOr<ClusterShape> shape = ClusterShape::Parse(item);
    if (!shape.ok()) return fail(shape.status().WithContext("--configs"));
    o.configs.push_back(*shape);
  }
  o.timing.seconds = c.get_option("--seconds")->as<double>();
  o.rounds = c.get_option("--rounds")->as<int>();
  o.memory_rows = c.get_option("--memory-rows")->as<int64_t>();
  std::vector<int64_t> snapshot_rows;
  std::stringstream rows_list(c.get_option("--snapshot-rows")->as<std::string>());
  for (std::string item; std::getline(rows_list, item, ',');) {
    try {
      size_t used = 0;
      const int64_t rows = std::stoll(item, &used);
      if (used != item.size() || rows < 0) throw std::invalid_argument(item);
      if (rows > 0) snapshot_rows.push_back(rows);
    } catch (const std::exception&) {
      return fail(InvalidArgument("--snapshot-rows: '" + item + "' is not a row count"));
    }
  }
  const int snapshot_rounds = c.get_option("--snapshot-rounds")->as<int>();
  if (!(o.timing.seconds > 0) || o.rounds < 1 || o.memory_rows < 0 || snapshot_rounds < 1) {
    return fail(InvalidArgument("--seconds must be > 0, --rounds and --snapshot-rounds >= 1 and --memory-rows >= 0"));
  }
  const std::string json_path = c.get_option("--json")->as<std::string>();
  if (!json_path.empty() && !std::ofstream(json_path, std::ios::app)) {
    return fail(Unavailable("--json: cannot open '" + json_path + "' for writing"));
  }
  StatusOr<std::vector<SparseResult>> results = RunSparsePullPush(o);
  if (!results.ok()) return fail(results.status());
  nlohmann::json j;
  fmt::print("\n| servers x workers, ids x dim | raw GB/s | pull GB/s | pull / raw, median (range) | pull M ids/s | "
             "push GB/s | push / raw, median (range) | push M ids/s |\n");
  fmt::print("|---|---|---|---|---|---|---|---|\n");
  for (const SparseResult& r : *results) {
    fmt::print("| {}, {} x {} | {:.3f} | {:.3f} | {} | {:.2f} | {:.3f} | {} | {:.2f} |\n", r.config.ToString(),
               r.point.ids, r.point.dim, r.raw.gbps(), r.pull.gbps(), RatioText(r.pull_ratios),
               r.IdsPerSec(r.pull) / 1e6, r.push.gbps(), RatioText(r.push_ratios), r.IdsPerSec(r.push) / 1e6);
    j["pullpush"].push_back({{"config", r.config.ToString()},
                             {"ids", r.point.ids},
                             {"dim", r.point.dim},
                             {"bytes_per_call", CallBytes(r.point.ids, r.point.dim)},
                             {"raw", {{"gbps", r.raw.gbps()}, {"calls", r.raw.calls}}},
                             {"rounds", r.pull_ratios.size()},
                             {"pull", MeasurementJson(r, r.pull, r.pull_ratios)},
                             {"push", MeasurementJson(r, r.push, r.push_ratios)}});
  }
  if (o.memory_rows > 0) {
    StatusOr<SparseMemoryResult> m = RunSparseMemory(o.memory_rows);
    if (!m.ok()) return fail(m.status());
    fmt::print("\n{} rows of dim {} (Adagrad): payload {:.1f} MiB, allocated {:.1f} MiB ({:.2f}x payload), resident "
               "growth {:.1f} MiB ({:.2f}x)\n",
               m->rows, m->dim, m->payload_bytes / 1048576.0, m->allocated_bytes / 1048576.0,
               m->allocated_over_payload(), m->rss_growth_bytes / 1048576.0, m->rss_over_payload());
    j["memory"] = {{"rows", m->rows},
                   {"dim", m->dim},
                   {"optimizer", "adagrad"},
                   {"payload_bytes", m->payload_bytes},
                   {"allocated_bytes", m->allocated_bytes},
                   {"rss_growth_bytes", m->rss_growth_bytes},
                   {"allocated_over_payload", m->allocated_over_payload()},
                   {"rss_over_payload", m->rss_over_payload()},
                   {"fill_seconds", m->fill_seconds}};
  }
  std::string snapshot_table;
  for (int64_t rows : snapshot_rows) {
    SnapshotBenchOptions so;
    so.servers = 1;
    so.param_mib = 0;
    so.sparse_rows = rows;
    so.sparse_dim = 16;
    so.optimizer = "adagrad";
    so.rounds = snapshot_rounds;
    StatusOr<nlohmann::json> snap = MeasureSnapshots(so);
    if (!snap.ok()) return fail(snap.status().WithContext("snapshot of " + std::to_string(rows) + " rows"));
    const nlohmann::json& m = (*snap)["median"];
    snapshot_table += fmt::format(
        "| {} | {:.0f} | {:.3f} ({:.2f}) | {:.3f} | {:.3f} ({:.2f}) | {:.3f} | {:.1f} | {:.2f} | {:.2f} | {:.1f} / {:.1f} |\n",
        rows,
        (*snap)["bytes"].get<double>() / 1048576.0, m["write_gbps"].get<double>(), m["write_over_raw"].get<double>(),
        m["raw_write_gbps"].get<double>(), m["restore_gbps"].get<double>(), m["restore_over_raw"].get<double>(),
        m["raw_read_gbps"].get<double>(), m["begin_seconds"].get<double>() * 1e3,
        m["stall_over_memcpy_fresh"].get<double>(), m["stall_over_memcpy_prefaulted"].get<double>(),
        m["push_seconds"].get<double>() * 1e3, m["push_in_cut_seconds"].get<double>() * 1e3);
    j["snapshot"].push_back({{"rows", rows}, {"dim", 16}, {"optimizer", "adagrad"}, {"servers", 1}, {"result", *snap}});
  }
  if (!snapshot_table.empty()) {
    fmt::print("\n| rows | MiB | write GB/s (/raw) | raw write GB/s | restore GB/s (/raw) | raw read GB/s | stall ms | "
               "stall/memcpy fresh | stall/memcpy touched | push ms / in the cut |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n{}",
               snapshot_table);
  }
  if (!json_path.empty()) {
    std::ofstream(json_path) << j.dump(2) << "\n";
    fmt::print("\nwrote {}\n", json_path);
  }
  return 0;
}

}  // namespace cairn
