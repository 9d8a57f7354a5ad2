#include "bench/snapshot_bench.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "bench/cpu_usage.h"
#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/server.h"
#include "bench/raw_rocksdb.h"
#include "bench/scratch_dir.h"
#include "bench/snapshot_report.h"
#include "worker/graph.h"
#include "worker/ps_client.h"
#include "worker/saver.h"
#include "worker/session.h"

namespace cairn {
namespace {

constexpr int kVariables = kSnapshotBenchVariables;
constexpr int64_t kRowElements = 1024;  // float32 rows of 4 KiB
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kChunkBytes = kSnapshotBenchChunkBytes;
constexpr int kMemcpyRepeats = 3;           // per round; the median is kept
constexpr int64_t kSparseIdsPerPush = 65536;
constexpr char kSparseTable[] = "emb";

using BenchClock = std::chrono::steady_clock;

double SecondsSince(BenchClock::time_point start) {
  return std::chrono::duration<double>(BenchClock::now() - start).count();
}


// ---- The job: servers, and the chief's client, session and saver ----

// Servers and the worker on separate event loops, as in separate processes;
// the servers' loop has a thread per server so that their copies and
// restores can run at once, as each server process would run its own.
// Members are destroyed in reverse: the saver, session and client, the
// servers (each waits for its snapshot write), then the loops.
class BenchJob {
 public:
  static StatusOr<std::unique_ptr<BenchJob>> Start(const SnapshotBenchOptions& o, const std::string& model_dir) {
    std::unique_ptr<BenchJob> job(new BenchJob(o.servers));
    std::vector<Endpoint> endpoints;
    ASSIGN_OR_RETURN(std::shared_ptr<const Secret> secret, Secret::Generate());
    for (int i = 0; i < o.servers; ++i) {
      ServerOptions so;
      so.index = i;
      so.auth.secret = secret;
      so.model_dir = model_dir;
      so.reuse_copy_buffers = o.reuse_copy_buffers;
      ASSIGN_OR_RETURN(auto server, Server::Start(job->server_loop_, so));
      endpoints.push_back(server->endpoint());
      job->servers_.push_back(std::move(server));
    }
    job->BuildGraph(o.param_mib, o.sparse_rows, o.sparse_dim);
    AsioTransportOptions to;
    to.credentials = ClientCredentials{secret, PeerRole::kChief, 0};
    job->transport_ = std::make_unique<AsioTransport>(job->worker_loop_, endpoints, to);
    PsClientOptions client;
    client.timeout = std::chrono::milliseconds(600000);  // a slow disk must not fail the measurement
    client.placement.split_threshold_bytes = kMiB;     // every variable split by rows over all servers
    job->client_ = std::make_unique<PsClient>(job->transport_.get(), client);
    SessionOptions session;
    session.optimizer.kind = o.optimizer;
    ASSIGN_OR_RETURN(job->session_, Session::Create(&job->graph_, job->client_.get(), session));
    RETURN_IF_ERROR(job->session_->Initialize());
    SaverOptions saver;
    saver.model_dir = model_dir;
    saver.retention.max_to_keep = 0;  // keep all: every round's snapshot stays until the scratch directory goes
    ASSIGN_OR_RETURN(job->saver_, Saver::Create(job->session_.get(), job->client_.get(), saver));
    return job;
  }

  // Until every server's snapshot copy buffers are prepared ahead (polled).
  Status WaitForBuffersAhead() {
    if (graph_.ServerVariables().empty()) return Status::OK();  // sparse tables keep no copy buffers
    const auto limit = Clock::now() + std::chrono::seconds(60);
    for (const auto& server : servers_) {
      while (server->stats().snapshot_buffers_ahead_bytes == 0) {
        if (Clock::now() > limit) return DeadlineExceeded("snapshot copy buffers not ready on a server within 60 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    return Status::OK();
  }

  // One training push of every variable, so the optimizer's slots hold
  // values that are not their initial ones; and the sparse table's rows,
  // created by training pushes of kSparseIdsPerPush ids each.
  Status PushGradients(int64_t sparse_rows) {
    PushBatch batch;
    for (const VariableSpec& spec : graph_.ServerVariables()) {
      Tensor grad(spec.dtype, spec.shape);
      grad.flat().setConstant(1e-3f);
      batch.gradients.emplace(spec.name, std::move(grad));
    }
    batch.train_step = true;
    RETURN_IF_ERROR(client_->Push(batch));
    const auto start = BenchClock::now();
    for (int64_t first = 0; first < sparse_rows; first += kSparseIdsPerPush) {
      const int64_t n = std::min(kSparseIdsPerPush, sparse_rows - first);
      PushBatch rows;
      SparseRowsUpdate& u = rows.sparse_gradients[kSparseTable];
      u.ids = SparseIds(first, n);
      u.values = Tensor(DType::kFloat32, {n, sparse_dim_});
      u.values.flat().setConstant(1e-3f);
      RETURN_IF_ERROR(client_->Push(rows));
      if ((first / kSparseIdsPerPush) % 32 == 31) {
        spdlog::info("  {} of {} rows created ({:.1f} s)", first + n, sparse_rows, SecondsSince(start));
      }
    }
    return Status::OK();
  }

  // The value and slot bytes each server holds, for the raw baseline: the
  // variables' split (slots are per element) and each server's rows of the
  // sparse table as the snapshot's manifest counts them.
  StatusOr<std::vector<uint64_t>> BytesPerServer(const std::string& model_dir, int64_t step,
                                                 uint64_t total) const {
    ASSIGN_OR_RETURN(SnapshotManifest m, ReadManifest(model_dir, step));
    std::vector<uint64_t> sparse(servers_.size(), 0);
    uint64_t sparse_sum = 0;
    for (const ManifestSparseTable& t : m.sparse_tables) {
      uint64_t row_bytes = sizeof(int64_t) + sizeof(float) * t.spec.dim;
      for (bool scalar : t.scalar_slots) row_bytes += sizeof(float) * (scalar ? 1 : t.spec.dim);
      for (size_t i = 0; i < t.rows_per_server.size() && i < sparse.size(); ++i) {
        sparse[i] += row_bytes * t.rows_per_server[i];
        sparse_sum += row_bytes * t.rows_per_server[i];
      }
    }
    std::vector<uint64_t> params = client_->placement().BytesPerServer();
    uint64_t sum = 0;
    for (uint64_t b : params) sum += b;
    const uint64_t dense_total = total > sparse_sum ? total - sparse_sum : 0;
    std::vector<uint64_t> out;
    for (size_t i = 0; i < params.size(); ++i) {
      out.push_back(sparse[i] +
                    (sum ? static_cast<uint64_t>(static_cast<double>(dense_total) * params[i] / sum) : 0));
    }
    return out;
  }

  // What a restore is checked by: the first variable and some sparse rows.
  // One training push of the sparse table: kSparseIdsPerPush rows spread
  // evenly over all of it (every cut chunk of the table is touched), or
  // nothing without one. Returns its wall seconds.
  StatusOr<double> PushSpread(int64_t sparse_rows) {
    if (sparse_rows <= 0) return 0.0;
    const int64_t n = std::min(kSparseIdsPerPush, sparse_rows);
    const int64_t stride = sparse_rows / n;
    PushBatch rows;
    SparseRowsUpdate& u = rows.sparse_gradients[kSparseTable];
    u.ids = Tensor(DType::kInt64, {n});
    for (int64_t i = 0; i < n; ++i) u.ids.data<int64_t>()[i] = SparseId(i * stride);
    u.values = Tensor(DType::kFloat32, {n, sparse_dim_});
    u.values.flat().setConstant(1e-3f);
    const auto start = BenchClock::now();
    RETURN_IF_ERROR(client_->Push(rows));
    return SecondsSince(start);
  }

  StatusOr<std::vector<Tensor>> PullSample(int64_t sparse_rows) {
    std::vector<Tensor> out;
    if (!graph_.ServerVariables().empty()) {
      const std::string name = graph_.ServerVariables().at(0).name;
      ASSIGN_OR_RETURN(auto values, client_->Pull({name}));
      out.push_back(values.at(name));
    }
    if (sparse_rows > 0) {
      const int64_t n = std::min(kSparseIdsPerPush, sparse_rows);
      ASSIGN_OR_RETURN(auto rows, client_->SparsePull({{kSparseTable, SparseIds(sparse_rows - n, n)}}));
      out.push_back(rows.at(kSparseTable));
    }
    return out;
  }

  Saver& saver() { return *saver_; }
  PsClient& client() { return *client_; }

 private:
  explicit BenchJob(int servers) : server_loop_(servers), worker_loop_(1) {}

  // Ids first, first + 1, ... spread over the int64 range (an odd
  // multiplier: distinct, and never the reserved id for these counts).
  static int64_t SparseId(int64_t k) { return static_cast<int64_t>(static_cast<uint64_t>(k) * 0x9E3779B97F4A7C15ull >> 1); }
  static Tensor SparseIds(int64_t first, int64_t n) {
    Tensor ids(DType::kInt64, {n});
    for (int64_t i = 0; i < n; ++i) ids.data<int64_t>()[i] = SparseId(first + i);
    return ids;
  }

  // kVariables float32 variables [rows, 1024] of param_mib / kVariables
  // each (none for 0), and a sparse table of `sparse_dim` if sparse_rows > 0.
  void BuildGraph(int param_mib, int64_t sparse_rows, int32_t sparse_dim) {
    sparse_dim_ = sparse_dim;
    if (sparse_rows > 0) {
      SparseTableOptions t;
      t.name = kSparseTable;
      t.dim = sparse_dim;
      t.init.kind = InitKind::kUniform;
      t.init.seed = 11;
      graph_.SparseTable(t);
    }
    const int64_t rows = static_cast<int64_t>(param_mib) * kMiB / kVariables / (kRowElements * sizeof(float));
    for (int i = 0; i < kVariables && rows > 0; ++i) {
      VariableOptions v;
      v.name = fmt::format("layer{}/kernel", i);
      v.shape = {rows, kRowElements};
      v.init.kind = InitKind::kUniform;
      v.init.seed = static_cast<uint64_t>(i + 1);
      graph_.Variable(v);
    }
  }

  EventLoop server_loop_;
  EventLoop worker_loop_;
  Graph graph_;
  int32_t sparse_dim_ = 0;
  std::vector<std::unique_ptr<Server>> servers_;
  std::unique_ptr<AsioTransport> transport_;
  std::unique_ptr<PsClient> client_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Saver> saver_;
};

// ---- One round ----

// The median of kMemcpyRepeats copies of `bytes` from a touched buffer into
// either a touched buffer or fresh anonymous pages (what a copy that
// allocates its destination may pay: one page fault per 4 KiB).
StatusOr<double> TimeMemcpy(uint64_t bytes, bool fresh) {
  std::unique_ptr<char[]> src(new char[bytes]);
  std::memset(src.get(), 0x5a, bytes);
  std::unique_ptr<char[]> touched;
  if (!fresh) {
    touched.reset(new char[bytes]);
    std::memset(touched.get(), 0, bytes);
  }
  std::vector<double> times;
  for (int i = 0; i < kMemcpyRepeats; ++i) {
    char* dst = touched.get();
    if (fresh) {
      void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return Unavailable("mmap of " + std::to_string(bytes) + " bytes failed");
      dst = static_cast<char*>(p);
    }
    const auto start = BenchClock::now();
    std::memcpy(dst, src.get(), bytes);
    times.push_back(SecondsSince(start));
    if (fresh) ::munmap(dst, bytes);
  }
  return SnapshotMedian(times);
}

// N raw RocksDB measurements at once, one per server with its bytes.
Status MeasureRaw(const std::string& dir, const std::vector<uint64_t>& bytes, SnapshotRound* r) {
  std::vector<SnapshotIoStats> writes(bytes.size()), reads(bytes.size());
  std::vector<Status> results(bytes.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < bytes.size(); ++i) {
    threads.emplace_back([&, i] {
      const std::string path = fmt::format("{}/raw-{}-{}.db", dir, r->step, i);
      results[i] = MeasureRawRocksDb(path, bytes[i], kChunkBytes, &writes[i], &reads[i]);
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < bytes.size(); ++i) {
    RETURN_IF_ERROR(results[i].WithContext("raw RocksDB baseline " + std::to_string(i)));
    r->raw_write_seconds = std::max(r->raw_write_seconds, writes[i].seconds);
    r->raw_read_seconds = std::max(r->raw_read_seconds, reads[i].seconds);
  }
  return Status::OK();
}

// Takes the round's snapshot; `at_cut` gets the sample the restore must
// give back (pulled before Begin: the push after it changes the table).
Status Snapshot(const SnapshotBenchOptions& o, BenchJob& job, SnapshotRound* r, std::vector<Tensor>* at_cut) {
  ASSIGN_OR_RETURN(r->push_seconds, job.PushSpread(o.sparse_rows));
  ASSIGN_OR_RETURN(*at_cut, job.PullSample(o.sparse_rows));
  const CpuTimes before = SampleCpuTimes();
  auto start = BenchClock::now();
  RETURN_IF_ERROR(job.saver().Begin(r->step));
  r->begin_seconds = SecondsSince(start);
  r->begin_faults = CpuUsageBetween(before, SampleCpuTimes(), r->begin_seconds).minor_faults;
  ASSIGN_OR_RETURN(r->push_in_cut_seconds, job.PushSpread(o.sparse_rows));
  const CpuTimes begun = SampleCpuTimes();
  ASSIGN_OR_RETURN(SnapshotStats stats, job.saver().Finish());
  r->finish_faults = CpuUsageBetween(begun, SampleCpuTimes(), 1).minor_faults;
  r->other_cores = CpuUsageBetween(before, SampleCpuTimes(), SecondsSince(start)).other_cores;
  r->bytes = stats.bytes;
  r->copy_seconds = stats.copy_seconds;
  r->write_seconds = stats.write_seconds;
  r->total_seconds = stats.total_seconds;
  return Status::OK();
}

// Restores the round's snapshot onto a fresh cluster (whose shards hold
// only their initial values, so the servers read into them in place) and
// checks one variable and sparse rows against `at_cut`; then rolls the original
// cluster, whose shards have been trained, back to the same snapshot (read
// into staging buffers, then applied), as a sync job's recovery does.
Status Restore(const SnapshotBenchOptions& o, const std::string& model_dir, BenchJob& original,
               const std::vector<Tensor>& want, SnapshotRound* r) {
  ASSIGN_OR_RETURN(std::unique_ptr<BenchJob> fresh, BenchJob::Start(o, model_dir));
  RestoreOptions ro;
  ro.step = r->step;
  const CpuTimes before = SampleCpuTimes();
  ASSIGN_OR_RETURN(RestoreResult restored, fresh->saver().Restore(ro));
  r->restore_seconds = restored.seconds;
  r->restore_faults = CpuUsageBetween(before, SampleCpuTimes(), restored.seconds).minor_faults;
  if (restored.bytes != r->bytes) {
    return DataLoss(fmt::format("restore read {} bytes, the snapshot holds {}", restored.bytes, r->bytes));
  }
  ASSIGN_OR_RETURN(std::vector<Tensor> got, fresh->PullSample(o.sparse_rows));
  for (size_t i = 0; i < want.size(); ++i) {
    if (!got[i].BitEqual(want[i])) return DataLoss("the restored model differs from the saved one");
  }

  ASSIGN_OR_RETURN(RestoreResult rolled_back, original.saver().Restore(ro));
  r->rollback_seconds = rolled_back.seconds;
  return Status::OK();
}

StatusOr<SnapshotRound> RunRound(const SnapshotBenchOptions& o, const std::string& work_dir, BenchJob& job,
                               int round) {
  SnapshotRound r;
  r.step = 100 * (round + 1);
  const std::string model_dir = work_dir + "/model";
  std::vector<Tensor> at_cut;
  RETURN_IF_ERROR(Snapshot(o, job, &r, &at_cut).WithContext("snapshot"));
  ASSIGN_OR_RETURN(r.memcpy_prefaulted, TimeMemcpy(r.bytes, /*fresh=*/false));
  ASSIGN_OR_RETURN(r.memcpy_fresh, TimeMemcpy(r.bytes, /*fresh=*/true));
  ASSIGN_OR_RETURN(std::vector<uint64_t> per_server, job.BytesPerServer(model_dir, r.step, r.bytes));
  RETURN_IF_ERROR(MeasureRaw(work_dir, per_server, &r));
  RETURN_IF_ERROR(Restore(o, model_dir, job, at_cut, &r).WithContext("restore"));
  return r;
}

Status WriteJson(const std::string& path, const nlohmann::json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) return DataLoss("cannot write '" + path + "'");
  return Status::OK();
}

}  // namespace

StatusOr<nlohmann::json> MeasureSnapshots(const SnapshotBenchOptions& o) {
  ASSIGN_OR_RETURN(std::unique_ptr<ScratchDir> scratch, ScratchDir::Make(o.dir, "cairn-snapshot-bench"));
  const MachineNote machine = DescribeMachine(scratch->path());
  fmt::print("{}\n", machine.ToString());
  spdlog::info("bench snapshot: {} server(s), {} MiB of parameters in {} variables, {} sparse rows of dim {}, {}",
               o.servers, o.param_mib, kVariables, o.sparse_rows, o.sparse_dim, o.optimizer);
  ASSIGN_OR_RETURN(std::unique_ptr<BenchJob> job, BenchJob::Start(o, scratch->path() + "/model"));
  RETURN_IF_ERROR(job->PushGradients(o.sparse_rows).WithContext("the training pushes"));
  // As in a job whose first snapshot is due later: copy buffers ready before round 1.
  if (o.reuse_copy_buffers) RETURN_IF_ERROR(job->WaitForBuffersAhead());
  std::vector<SnapshotRound> rounds;
  for (int i = 0; i < o.rounds; ++i) {
    ASSIGN_OR_RETURN(SnapshotRound r, RunRound(o, scratch->path(), *job, i));
    spdlog::info("round {}: {:.1f} MiB, stall {:.1f} ms, write {:.3f} GB/s (raw {:.3f}), "
                 "restore {:.3f} GB/s (raw {:.3f})",
                 i + 1, r.bytes / double(kMiB), r.begin_seconds * 1e3, r.write_gbps(), r.raw_write_gbps(),
                 r.restore_gbps(), r.raw_read_gbps());
    rounds.push_back(r);
  }
  const uint64_t bytes = rounds.empty() ? 0 : rounds[0].bytes;
  const std::string sparse =
      o.sparse_rows > 0 ? fmt::format(" + a sparse table of {} rows of dim {}", o.sparse_rows, o.sparse_dim) : "";
  fmt::print("\nsnapshot of {} MiB ({} MiB parameters{} + {} slots), {} server(s), {} round(s){}\n\n",
             bytes / kMiB, o.param_mib, sparse, o.optimizer, o.servers, o.rounds,
             o.reuse_copy_buffers ? "" : ", copy buffers not reused");
  fmt::print("{}{}\n", FormatSnapshotReport(rounds), machine.ToString());
  return SnapshotRoundsJson(o, machine, rounds);
}

namespace {

Status RunBench(const SnapshotBenchOptions& o) {
  ASSIGN_OR_RETURN(nlohmann::json j, MeasureSnapshots(o));
  if (!o.json_path.empty()) {
    RETURN_IF_ERROR(WriteJson(o.json_path, j));
    fmt::print("wrote {}\n", o.json_path);
  }
  return Status::OK();
}

}  // namespace

void AddSnapshotBench(CLI::App& bench) {
  CLI::App* c = bench.add_subcommand(
      "snapshot", "Snapshot write and restore throughput against raw RocksDB, and the training stall against memcpy");
  c->add_option("--servers", "Servers (in this process, over loopback TCP)")->default_val(2);
  c->add_option("--param-mib", "MiB of parameters, in 4 float32 variables [rows, 1024]; slots come on top")
      ->default_val(96);
  c->add_option("--optimizer", "Optimizer whose slots are saved too (adam: 2 per-element slots)")->default_val("adam");
  c->add_option("--rounds", "Rounds of snapshot, raw baseline and restore; medians are reported")->default_val(3);
  c->add_option("--dir", "Directory for the data (a fresh directory inside it is removed after; default /tmp)");
  c->add_option("--json", "Also write every figure as JSON to this file");
  c->add_option("--sparse-rows", "Rows of a sparse table saved beside the variables (0: none)")->default_val(0);
  c->add_option("--sparse-dim", "Floats per row of the sparse table")->default_val(16);
  c->add_flag("--no-reuse-copy-buffers")
      ->description("Servers allocate every snapshot's copies anew (as before they were reused)");
}

int RunSnapshotBench(CLI::App& bench) {
  if (!bench.got_subcommand("snapshot")) return -1;
  const CLI::App& c = *bench.get_subcommand("snapshot");
  SnapshotBenchOptions o;
  o.servers = c.get_option("--servers")->as<int>();
  o.param_mib = c.get_option("--param-mib")->as<int>();
  o.optimizer = c.get_option("--optimizer")->as<std::string>();
  o.rounds = c.get_option("--rounds")->as<int>();
  o.dir = c.get_option("--dir")->as<std::string>();
  o.json_path = c.get_option("--json")->as<std::string>();
  o.sparse_rows = c.get_option("--sparse-rows")->as<int64_t>();
  o.sparse_dim = c.get_option("--sparse-dim")->as<int32_t>();
  o.reuse_copy_buffers = c.get_option("--no-reuse-copy-buffers")->count() == 0;
  if (o.servers < 1 || o.param_mib < 0 || o.rounds < 1 || o.sparse_rows < 0 || o.sparse_dim < 1 ||
      (o.param_mib == 0 && o.sparse_rows == 0)) {
    spdlog::error("bench snapshot: --servers and --rounds must be >= 1, --param-mib and --sparse-rows >= 0 "
                  "(not both 0), --sparse-dim >= 1");
    return 1;
  }
  if (!o.json_path.empty() && !std::ofstream(o.json_path, std::ios::app)) {
    spdlog::error("bench snapshot: cannot open '{}' for writing", o.json_path);
    return 1;
  }
  const Status s = RunBench(o);
  if (!s.ok()) {
    spdlog::error("bench snapshot failed: {}", s.ToString());
    return 1;
  }
  return 0;
}

}  // namespace cairn
