#include "bench/pushpull_bench.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>

#include <spdlog/spdlog.h>

#include "bench/bench_worker.h"
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

// The servers and workers of one case. Servers and workers run on separate
// event loops, as they do in separate server and worker processes, so that
// the two sides of a call can use two cores as the raw baseline's do.
// Members are destroyed in reverse: workers (their transports), servers,
// then the loops.
class BenchCluster {
 public:
  // With `authenticated`, the servers require the handshake with a secret
  // of their own and the workers hold it; otherwise the servers run
  // insecure and the workers hold no secret.
  static StatusOr<std::unique_ptr<BenchCluster>> Start(const ClusterShape& config, const VariableSpec& spec,
                                                      const PushPullOptions& options, bool authenticated) {
    std::unique_ptr<BenchCluster> c(new BenchCluster(options.event_loop_threads, spec));
    LocalClusterOptions servers;
    servers.servers = config.servers;
    if (!authenticated) servers.auth = ServerAuth{nullptr, true};
    ASSIGN_OR_RETURN(c->cluster_, LocalCluster::Start(c->server_loop_, servers));
    OptimizerSpec sgd;
    sgd.kind = "sgd";
    sgd.learning_rate = options.learning_rate;
    for (int w = 0; w < config.workers; ++w) {
      auto worker =
          std::make_unique<BenchWorker>(c->worker_loop_, *c->cluster_, w, spec, options.call_timeout,
                                        kSplitAcrossServers);
      Status created = worker->Create(sgd);
      if (!created.ok()) return created.WithContext("worker " + std::to_string(w) + " creating the benchmark variable");
      c->workers_.push_back(std::move(worker));
    }
    return c;
  }

  // Every worker repeats `op` at once, keeping up to `depth` calls in
  // flight; each completed call counts the value's bytes.
  StatusOr<Measurement> Measure(Status (BenchWorker::*op)(), const TimedLoopOptions& timing, int depth = 1) {
    std::vector<TimedTask> tasks;
    for (auto& w : workers_) {
      w->set_depth(depth);
      tasks.push_back(TimedTask{[w = w.get(), op] { return (w->*op)(); }, spec_.byte_size()});
    }
    StatusOr<Measurement> m = RunTimedLoop(tasks, timing);
    for (auto& w : workers_) {
      Status drained = w->Drain();
      w->set_depth(1);
      if (m.ok() && !drained.ok()) m = drained;
    }
    return m;
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

// A workload: whether it runs, the call, and where its results go.
struct Workload {
  bool PushPullOps::*enabled;
  Status (BenchWorker::*op)();
  const char* name;
  Measurement PushPullResult::*authed;    // or the only cluster's, insecure with AuthMode::kNone
  Measurement PushPullResult::*insecure;  // AuthMode::kBoth
  std::vector<double> AuthRatios::*ratios;
};

constexpr Workload kWorkloads[] = {
    {&PushPullOps::push, &BenchWorker::Push, "push", &PushPullResult::push, &PushPullResult::insecure_push,
     &AuthRatios::push},
    {&PushPullOps::pull, &BenchWorker::Pull, "pull", &PushPullResult::pull, &PushPullResult::insecure_pull,
     &AuthRatios::pull},
    {&PushPullOps::push_pull, &BenchWorker::PushPull, "push+pull", &PushPullResult::push_pull,
     &PushPullResult::insecure_push_pull, &AuthRatios::push_pull},
};

// One round of workload `w` on both clusters, back to back; which goes first
// alternates by round, so neither always runs on caches the other warmed.
Status RunSideBySide(BenchCluster& authed, BenchCluster& insecure, const Workload& w, const TimedLoopOptions& t,
                     int round, PushPullResult* r) {
  const bool authed_first = round % 2 == 0;
  StatusOr<Measurement> first = (authed_first ? authed : insecure).Measure(w.op, t);
  StatusOr<Measurement> second = (authed_first ? insecure : authed).Measure(w.op, t);
  StatusOr<Measurement>& s = authed_first ? first : second;
  StatusOr<Measurement>& n = authed_first ? second : first;
  if (!s.ok()) return s.status().WithContext(std::string(w.name) + " (handshake)");
  if (!n.ok()) return n.status().WithContext(std::string(w.name) + " (insecure)");
  (r->auth_over_none.*w.ratios).push_back(n->gbps() > 0 ? s->gbps() / n->gbps() : 0.0);
  (r->*w.authed).Merge(*s);
  (r->*w.insecure).Merge(*n);
  return Status::OK();
}

// One round of every workload, in a fixed order; `insecure` is set with
// AuthMode::kBoth.
Status RunRound(RawSocketBench& raw, BenchCluster& cluster, BenchCluster* insecure, const PushPullOptions& o,
                int round, PushPullResult* r) {
  const TimedLoopOptions t = RoundTiming(o, round);
  RETURN_IF_ERROR(AddRound(raw.Measure(t), "raw socket baseline", &r->raw));
  for (const Workload& w : kWorkloads) {
    if (!(o.ops.*w.enabled)) continue;
    if (insecure != nullptr) {
      RETURN_IF_ERROR(RunSideBySide(cluster, *insecure, w, t, round, r));
      continue;
    }
    StatusOr<Measurement> one = cluster.Measure(w.op, t);
    if (!one.ok()) return one.status().WithContext(w.name);
    (r->*w.authed).Merge(*one);
    const bool deep = o.depth > 1 && (w.op == &BenchWorker::Push || w.op == &BenchWorker::Pull);
    if (!deep) continue;
    StatusOr<Measurement> many = cluster.Measure(w.op, t, o.depth);
    if (!many.ok()) return many.status().WithContext(std::string(w.name) + " at depth " + std::to_string(o.depth));
    const bool push = w.op == &BenchWorker::Push;
    (push ? r->deep_push : r->deep_pull).Merge(*many);
    (push ? r->deep_over_one.push : r->deep_over_one.pull).push_back(one->gbps() > 0 ? many->gbps() / one->gbps() : 0);
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

const char* AuthModeName(AuthMode mode) {
  switch (mode) {
    case AuthMode::kNone: return "none";
    case AuthMode::kHandshake: return "handshake";
    case AuthMode::kBoth: return "both";
  }
  return "?";
}

StatusOr<AuthMode> ParseAuthMode(const std::string& text) {
  for (AuthMode m : {AuthMode::kNone, AuthMode::kHandshake, AuthMode::kBoth}) {
    if (text == AuthModeName(m)) return m;
  }
  return InvalidArgument("--auth: '" + text + "' is not none, handshake or both");
}

double MedianRatio(std::vector<double> ratios) {
  if (ratios.empty()) return 0.0;
  std::sort(ratios.begin(), ratios.end());
  const size_t n = ratios.size();
  return n % 2 == 1 ? ratios[n / 2] : (ratios[n / 2 - 1] + ratios[n / 2]) / 2;
}

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
  if (o.connects < 0) return InvalidArgument("--connects must be >= 0");
  if (o.depth < 1 || o.depth > 1024) return InvalidArgument("--depth must be in [1, 1024]");
  if (o.depth > 1 && o.auth == AuthMode::kBoth) return InvalidArgument("--depth > 1 runs with one --auth mode, not both");
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
  r.auth = options.auth;
  r.depth = options.depth;
  StatusOr<std::unique_ptr<RawSocketBench>> raw = StartRaw(config, spec);
  if (!raw.ok()) return raw.status().WithContext("raw socket baseline");
  ASSIGN_OR_RETURN(auto cluster, BenchCluster::Start(config, spec, options, options.auth != AuthMode::kNone));
  std::unique_ptr<BenchCluster> insecure;
  if (options.auth == AuthMode::kBoth) {
    StatusOr<std::unique_ptr<BenchCluster>> started = BenchCluster::Start(config, spec, options, false);
    if (!started.ok()) return started.status().WithContext("insecure cluster");
    insecure = std::move(*started);
  }
  for (int round = 0; round < options.rounds; ++round) {
    RETURN_IF_ERROR(RunRound(**raw, *cluster, insecure.get(), options, round, &r));
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
      if (options.auth == AuthMode::kBoth) {
        spdlog::info("{}: insecure push {:.3f}, pull {:.3f}, push+pull {:.3f}", CaseName(config, bytes),
                     r->insecure_push.gbps(), r->insecure_pull.gbps(), r->insecure_push_pull.gbps());
      }
      results.push_back(std::move(*r));
    }
  }
  return results;
}

}  // namespace cairn
