#include "bench/pushpull_bench.h"

#include <charconv>
#include <map>
#include <memory>

#include <spdlog/spdlog.h>

#include "bench/raw_socket_bench.h"
#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "common/placement.h"
#include "ps/local_cluster.h"
#include "worker/ps_client.h"

namespace cairn {
namespace {

constexpr int64_t kRowElements = 256;  // so a value of M bytes has M / 1024 rows to split
constexpr uint64_t kRowBytes = kRowElements * sizeof(float);
constexpr char kVariable[] = "bench_value";

VariableSpec BenchSpec(uint64_t value_bytes) {
  VariableSpec spec;
  spec.name = kVariable;
  spec.shape = {static_cast<int64_t>(value_bytes / kRowBytes), kRowElements};
  spec.dtype = DType::kFloat32;
  return spec;
}

// Split by rows over every server whatever the size: the 2x2 case is about
// both servers and both workers sharing one variable.
constexpr PlacementOptions kSplitAcrossServers{.split_threshold_bytes = 0};

StatusOr<Placement> BenchPlacement(const VariableSpec& spec, int servers) {
  return Placement::Compute({spec}, servers, kSplitAcrossServers);
}

// The bytes one call moves to or from each server that holds a slice.
StatusOr<std::vector<uint64_t>> SliceBytes(const Placement& placement, const VariableSpec& spec) {
  ASSIGN_OR_RETURN(std::vector<ShardSlice> slices, placement.SlicesOf(spec.name));
  std::vector<uint64_t> bytes;
  for (const ShardSlice& s : slices) bytes.push_back(static_cast<uint64_t>(s.rows()) * spec.row_bytes());
  return bytes;
}

// One worker: its own transport and client, and a gradient batch made once
// so the loop measures the calls and nothing else.
class BenchWorker {
 public:
  BenchWorker(EventLoop& loop, const LocalCluster& cluster, int id, const VariableSpec& spec,
              std::chrono::milliseconds timeout)
      : transport_(loop, cluster.endpoints(), cluster.ClientOptions(id == 0 ? PeerRole::kChief : PeerRole::kWorker, id)),
        client_(&transport_, PsClientOptions{id, timeout, kSplitAcrossServers}),
        spec_(spec) {
    Tensor grad(spec.dtype, spec.shape);
    grad.flat().setConstant(1.0f);
    batch_.gradients.emplace(spec.name, std::move(grad));
  }

  // Every worker declares the variable (idempotent on the servers): that is
  // how a client learns its placement.
  Status Create(const OptimizerSpec& optimizer) { return client_.Create({spec_}, optimizer, TrainingMode{}); }

  Status Push() { return client_.Push(batch_); }

  Status Pull() {
    ASSIGN_OR_RETURN(auto values, client_.Pull({spec_.name}));
    auto it = values.find(spec_.name);
    if (it == values.end() || it->second.byte_size() != spec_.byte_size()) {
      return DataLoss("pull of '" + spec_.name + "' returned the wrong value");
    }
    return Status::OK();
  }

  Status PushPull() {
    RETURN_IF_ERROR(Push());
    return Pull();
  }

 private:
  AsioTransport transport_;
  PsClient client_;  // uses transport_
  const VariableSpec spec_;
  PushBatch batch_;  // gradients only: asynchronous SGD steps
};

// The servers and workers of one case. Servers and workers run on separate
// event loops, as they do in separate server and worker processes, so that
// the two sides of a call can use two cores as the raw baseline's do.
// Members are destroyed in reverse: workers (their transports), servers,
// then the loops.
class BenchCluster {
 public:
  static StatusOr<std::unique_ptr<BenchCluster>> Start(const ClusterShape& config, const VariableSpec& spec,
                                                      const PushPullOptions& options) {
    std::unique_ptr<BenchCluster> c(new BenchCluster(options.event_loop_threads, spec));
    LocalClusterOptions servers;
    servers.servers = config.servers;
    ASSIGN_OR_RETURN(c->cluster_, LocalCluster::Start(c->server_loop_, servers));
    OptimizerSpec sgd;
    sgd.kind = "sgd";
    sgd.learning_rate = options.learning_rate;
    for (int w = 0; w < config.workers; ++w) {
      auto worker =
          std::make_unique<BenchWorker>(c->worker_loop_, *c->cluster_, w, spec, options.call_timeout);
      Status created = worker->Create(sgd);
      if (!created.ok()) return created.WithContext("worker " + std::to_string(w) + " creating the benchmark variable");
      c->workers_.push_back(std::move(worker));
    }
    return c;
  }

  // Every worker repeats `op` at once; each call counts the value's bytes.
  StatusOr<Measurement> Measure(Status (BenchWorker::*op)(), const TimedLoopOptions& timing) {
    std::vector<TimedTask> tasks;
    for (auto& w : workers_) tasks.push_back(TimedTask{[w = w.get(), op] { return (w->*op)(); }, spec_.byte_size()});
    return RunTimedLoop(tasks, timing);
  }

 private:
  BenchCluster(int loop_threads, VariableSpec spec)
      : server_loop_(loop_threads), worker_loop_(loop_threads), spec_(std::move(spec)) {}

  EventLoop server_loop_;
  EventLoop worker_loop_;
  const VariableSpec spec_;
  std::unique_ptr<LocalCluster> cluster_;
  std::vector<std::unique_ptr<BenchWorker>> workers_;
};

StatusOr<std::unique_ptr<RawSocketBench>> StartRaw(const ClusterShape& config, const VariableSpec& spec) {
  ASSIGN_OR_RETURN(Placement placement, BenchPlacement(spec, config.servers));
  RawSocketOptions raw;
  raw.workers = config.workers;
  ASSIGN_OR_RETURN(raw.message_bytes, SliceBytes(placement, spec));
  return RawSocketBench::Start(raw);
}

// Adds one round of a workload to its total, naming the workload in an error.
Status AddRound(StatusOr<Measurement> round, const char* name, Measurement* total) {
  if (!round.ok()) return round.status().WithContext(name);
  total->Merge(*round);
  return Status::OK();
}

// Round 0 warms up fully; later rounds only re-prime caches that the other
// workloads evicted meanwhile.
TimedLoopOptions RoundTiming(const PushPullOptions& o, int round) {
  TimedLoopOptions t;
  t.seconds = o.timing.seconds / o.rounds;
  t.warmup_seconds = round == 0 ? o.timing.warmup_seconds : o.rewarm_seconds;
  return t;
}

// One round of every workload, in a fixed order.
Status RunRound(RawSocketBench& raw, BenchCluster& cluster, const PushPullOptions& o, int round,
                PushPullResult* r) {
  const TimedLoopOptions t = RoundTiming(o, round);
  RETURN_IF_ERROR(AddRound(raw.Measure(t), "raw socket baseline", &r->raw));
  if (o.ops.push) RETURN_IF_ERROR(AddRound(cluster.Measure(&BenchWorker::Push, t), "push", &r->push));
  if (o.ops.pull) RETURN_IF_ERROR(AddRound(cluster.Measure(&BenchWorker::Pull, t), "pull", &r->pull));
  if (o.ops.push_pull) {
    RETURN_IF_ERROR(AddRound(cluster.Measure(&BenchWorker::PushPull, t), "push+pull", &r->push_pull));
  }
  return Status::OK();
}

// True when all of `s` is one decimal integer.
bool ParseWholeInt(std::string_view s, int* out) {
  const char* end = s.data() + s.size();
  auto [stop, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && stop == end && !s.empty();
}

std::string CaseName(const ClusterShape& config, uint64_t value_bytes) {
  return config.ToString() + " " + std::to_string(value_bytes) + " B";
}

}  // namespace

std::string ClusterShape::ToString() const { return std::to_string(servers) + "x" + std::to_string(workers); }

StatusOr<ClusterShape> ClusterShape::Parse(const std::string& text) {
  const std::string_view t = text;
  const size_t x = t.find('x');
  ClusterShape shape;
  if (x == std::string_view::npos || !ParseWholeInt(t.substr(0, x), &shape.servers) ||
      !ParseWholeInt(t.substr(x + 1), &shape.workers)) {
    return InvalidArgument("cluster shape '" + text + "' is not SxW (servers x workers, e.g. 2x2)");
  }
  if (shape.servers < 1 || shape.workers < 1) {
    return InvalidArgument("cluster shape '" + text + "' needs at least one server and one worker");
  }
  return shape;
}

double PushPullResult::RatioToRaw(const Measurement& m) const {
  const double base = raw.gbps();
  return base > 0 ? m.gbps() / base : 0.0;
}

Status ValidatePushPullOptions(const PushPullOptions& o) {
  if (o.value_bytes.empty() || o.configs.empty()) return InvalidArgument("need at least one size and one config");
  for (uint64_t b : o.value_bytes) {
    if (b == 0 || b % kRowBytes != 0) {
      return InvalidArgument("value size " + std::to_string(b) + " is not a positive multiple of " +
                             std::to_string(kRowBytes) + " bytes (one row of 256 float32)");
    }
  }
  for (const ClusterShape& c : o.configs) {
    if (c.servers < 1 || c.workers < 1) return InvalidArgument("cluster shape " + c.ToString() + " is empty");
  }
  if (!(o.timing.seconds > 0) || !(o.timing.warmup_seconds >= 0) || !(o.rewarm_seconds >= 0)) {
    return InvalidArgument("--seconds must be > 0 and --warmup-seconds >= 0");
  }
  if (o.rounds < 1) return InvalidArgument("--rounds must be at least 1");
  if (!(o.learning_rate > 0)) return InvalidArgument("learning rate must be > 0");
  if (o.event_loop_threads < 1) return InvalidArgument("the event loop needs at least one thread");
  return Status::OK();
}

StatusOr<PushPullResult> RunPushPullCase(const ClusterShape& config, uint64_t value_bytes,
                                         const PushPullOptions& options) {
  PushPullOptions just_this = options;
  just_this.value_bytes = {value_bytes};
  just_this.configs = {config};
  RETURN_IF_ERROR(ValidatePushPullOptions(just_this));
  const VariableSpec spec = BenchSpec(value_bytes);
  PushPullResult r;
  r.config = config;
  r.value_bytes = value_bytes;
  StatusOr<std::unique_ptr<RawSocketBench>> raw = StartRaw(config, spec);
  if (!raw.ok()) return raw.status().WithContext("raw socket baseline");
  ASSIGN_OR_RETURN(auto cluster, BenchCluster::Start(config, spec, options));
  for (int round = 0; round < options.rounds; ++round) {
    RETURN_IF_ERROR(RunRound(**raw, *cluster, options, round, &r));
  }
  return r;
}

StatusOr<std::vector<PushPullResult>> RunPushPullBench(const PushPullOptions& options) {
  RETURN_IF_ERROR(ValidatePushPullOptions(options));
  std::vector<PushPullResult> results;
  for (const ClusterShape& config : options.configs) {
    for (uint64_t bytes : options.value_bytes) {
      StatusOr<PushPullResult> r = RunPushPullCase(config, bytes, options);
      if (!r.ok()) return r.status().WithContext(CaseName(config, bytes));
      spdlog::info("{}: raw {:.3f} GB/s, push {:.3f}, pull {:.3f}, push+pull {:.3f}", CaseName(config, bytes),
                   r->raw.gbps(), r->push.gbps(), r->pull.gbps(), r->push_pull.gbps());
      results.push_back(std::move(*r));
    }
  }
  return results;
}

}  // namespace cairn
