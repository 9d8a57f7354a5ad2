#include "bench/load_bench.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bench/bench_worker.h"
#include "bench/cpu_usage.h"
#include "bench/load_report.h"
#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/local_cluster.h"
#include "worker/ps_client.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kRowElements = 256;
constexpr uint64_t kRowBytes = kRowElements * sizeof(float);
constexpr char kVariable[] = "load_value";
constexpr size_t kErrorSamples = 5;
// After a failed call a client waits this long, so a dead server is not a spin.
constexpr auto kErrorPause = std::chrono::milliseconds(10);
// How long after the run the leftovers are sampled: the server has seen the
// hostile peers' closes by then.
constexpr auto kSettle = std::chrono::seconds(1);

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// When each window begins; window i is hostile when i is odd.
struct Schedule {
  Clock::time_point first;  // the first window's start (warmup before it)
  Clock::duration window{};
  int windows = 0;

  // The window a moment falls in: -1 in the warmup, `windows` once over.
  int WindowAt(Clock::time_point t) const {
    if (t < first) return -1;
    return static_cast<int>(std::min<int64_t>(windows, (t - first) / window));
  }
  Clock::time_point Start(int w) const { return first + window * w; }
  bool Hostile(int w, bool any) const { return any && w % 2 == 1; }
};

// What one client saw in one window.
struct WindowTally {
  LatencyHistogram push, pull;
  uint64_t errors = 0;
  std::vector<std::string> error_samples;
};

// One legitimate worker (a BenchWorker) on a paced schedule.
class LoadClient {
 public:
  LoadClient(EventLoop& loop, const LocalCluster& cluster, int id, const VariableSpec& spec,
             std::chrono::milliseconds timeout)
      : worker_(loop, cluster, id, spec, timeout) {}

  // `n` pushes back to back; the first error.
  Status PushRepeatedly(int n) {
    for (int i = 0; i < n; ++i) RETURN_IF_ERROR(worker_.Push());
    return Status::OK();
  }

  Status Create() {
    OptimizerSpec sgd;
    sgd.kind = "sgd";
    sgd.learning_rate = 1e-9;  // values stay finite however long it runs
    return worker_.Create(sgd);
  }

  // Push then pull, once per interval from `phase` on, until the schedule
  // is over; each call is tallied in the window it started in (none in the
  // warmup). Clients' phases are spread over the interval, so calls arrive
  // steadily rather than all at each tick.
  void Run(const Schedule& schedule, std::chrono::milliseconds interval, Clock::duration phase,
           std::vector<WindowTally>* tallies) {
    Clock::time_point next = Clock::now() + phase;
    std::this_thread::sleep_until(next);
    for (;;) {
      const Clock::time_point start = Clock::now();
      const int w = schedule.WindowAt(start);
      if (w >= schedule.windows) return;
      const Status pushed = worker_.Push();
      const Clock::time_point mid = Clock::now();
      const Status pulled = worker_.Pull();
      const Clock::time_point end = Clock::now();
      if (w >= 0) Tally(pushed, pulled, mid - start, end - mid, &(*tallies)[w]);
      if (!pushed.ok() || !pulled.ok()) std::this_thread::sleep_for(kErrorPause);
      if (interval.count() > 0) {
        next = std::max(next + interval, Clock::now() - interval);  // a late call does not bunch the next ones
        std::this_thread::sleep_until(next);
      }
    }
  }

 private:
  static void Tally(const Status& pushed, const Status& pulled, Clock::duration push, Clock::duration pull,
                    WindowTally* t) {
    for (const Status* s : {&pushed, &pulled}) {
      if (s->ok()) continue;
      ++t->errors;
      if (t->error_samples.size() < kErrorSamples) t->error_samples.push_back(s->ToString());
    }
    if (pushed.ok()) t->push.Add(Micros(push));
    if (pulled.ok()) t->pull.Add(Micros(pull));
  }

  BenchWorker worker_;
};

// VmRSS and VmSize, from "VmRSS:   1234 kB" lines.
void ReadMemory(uint64_t* rss, uint64_t* vm) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) *rss = std::stoull(line.substr(6)) * 1024;
    if (line.rfind("VmSize:", 0) == 0) *vm = std::stoull(line.substr(7)) * 1024;
  }
}

int OpenFds() {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

ResourceSample Sample(Clock::time_point zero) {
  ResourceSample s;
  s.at_seconds = std::chrono::duration<double>(Clock::now() - zero).count();
  ReadMemory(&s.rss_bytes, &s.vm_bytes);
  s.open_fds = OpenFds();
  return s;
}

// Samples the process once a second on a thread of its own, from
// construction until Stop.
class ResourceSampler {
 public:
  explicit ResourceSampler(Clock::time_point zero) : zero_(zero), thread_([this] { Run(); }) {}
  ~ResourceSampler() { Stop(); }
  std::vector<ResourceSample> Stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
    return samples_;
  }

 private:
  void Run() {
    for (Clock::time_point next = Clock::now(); !stop_.load(); next += std::chrono::seconds(1)) {
      while (!stop_.load() && Clock::now() < next) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (stop_.load()) return;
      samples_.push_back(Sample(zero_));
    }
  }

  const Clock::time_point zero_;
  std::atomic<bool> stop_{false};
  std::vector<ResourceSample> samples_;  // written by the thread until joined
  std::thread thread_;                   // last: starts once the rest is built
};

ServerStats StatsChange(const ServerStats& a, const ServerStats& b) {
  ServerStats d;
  d.pushes_applied = b.pushes_applied - a.pushes_applied;
  d.pulls_served = b.pulls_served - a.pulls_served;
  d.frames_rejected = b.frames_rejected - a.frames_rejected;
  d.requests_failed = b.requests_failed - a.requests_failed;
  d.connections_accepted = b.connections_accepted - a.connections_accepted;
  d.connections_refused = b.connections_refused - a.connections_refused;
  d.handshakes_failed = b.handshakes_failed - a.handshakes_failed;
  d.connections_timed_out = b.connections_timed_out - a.connections_timed_out;
  return d;
}

// Folds every client's tallies into the windows and the phase totals.
void Collect(const std::vector<std::vector<WindowTally>>& tallies, LoadResult* r) {
  for (size_t w = 0; w < r->windows.size(); ++w) {
    LoadWindow& win = r->windows[w];
    for (const auto& client : tallies) {
      const WindowTally& t = client[w];
      win.push.Merge(t.push);
      win.pull.Merge(t.pull);
      win.errors += t.errors;
      for (const std::string& e : t.error_samples) {
        if (r->error_samples.size() < kErrorSamples) r->error_samples.push_back(e);
      }
    }
    r->errors += win.errors;
    (win.hostile ? r->hostile_push : r->quiet_push).Merge(win.push);
    (win.hostile ? r->hostile_pull : r->quiet_pull).Merge(win.pull);
  }
}

void AttachSamples(std::vector<ResourceSample> samples, double window_seconds, LoadResult* r) {
  for (const ResourceSample& s : samples) {
    if (s.at_seconds < 0) continue;
    const size_t w = static_cast<size_t>(s.at_seconds / window_seconds);
    if (w >= r->windows.size()) continue;
    r->windows[w].rss_max_bytes = std::max(r->windows[w].rss_max_bytes, s.rss_bytes);
    r->windows[w].vm_max_bytes = std::max(r->windows[w].vm_max_bytes, s.vm_bytes);
  }
  r->samples = std::move(samples);
}

VariableSpec LoadSpec(uint64_t value_bytes) {
  VariableSpec spec;
  spec.name = kVariable;
  spec.shape = {static_cast<int64_t>(value_bytes / kRowBytes), kRowElements};
  spec.dtype = DType::kFloat32;
  return spec;
}

// The cluster, its clients and the attackers, for one run. Destroyed in
// reverse: attackers, clients (their transports), the cluster, the loops.
struct LoadRig {
  LoadRig(const LoadBenchOptions& o) : server_loop(o.server_threads), client_loop(o.client_threads) {}
  EventLoop server_loop;
  EventLoop client_loop;
  std::unique_ptr<LocalCluster> cluster;
  std::vector<std::unique_ptr<LoadClient>> clients;
  std::unique_ptr<HostileLoad> hostile;
};

// Every client pushes `n` times at once, each from a thread of its own.
Status WarmUp(LoadRig& rig, int n) {
  std::vector<Status> results(rig.clients.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < rig.clients.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = rig.clients[i]->PushRepeatedly(n); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) return results[i].WithContext("legitimate client " + std::to_string(i) + " warming up");
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<LoadRig>> StartRig(const LoadBenchOptions& o) {
  auto rig = std::make_unique<LoadRig>(o);
  LocalClusterOptions co;
  co.servers = 1;
  co.connections = o.limits;
  ASSIGN_OR_RETURN(rig->cluster, LocalCluster::Start(rig->server_loop, co));
  const VariableSpec spec = LoadSpec(o.value_bytes);
  for (int i = 0; i < o.clients; ++i) {
    auto c = std::make_unique<LoadClient>(rig->client_loop, *rig->cluster, i, spec, o.call_timeout);
    Status created = c->Create();  // the chief's first, so the workers' declarations find it
    if (!created.ok()) return created.WithContext("legitimate client " + std::to_string(i) + " creating the variable");
    rig->clients.push_back(std::move(c));
  }
  RETURN_IF_ERROR(WarmUp(*rig, o.warmup_pushes));
  if (o.hostile > 0) {
    HostileOptions h;
    h.port = rig->cluster->endpoints()[0].port;
    h.peers = o.hostile;
    h.kinds = o.hostile_kinds;
    h.secret = rig->cluster->auth().secret;
    h.trickle_interval = o.trickle_interval;
    h.reconnect_delay = o.reconnect_delay;
    h.claimed_bytes = o.claimed_bytes;
    ASSIGN_OR_RETURN(rig->hostile, HostileLoad::Make(h));
  }
  return rig;
}

// Runs the windows from this thread: reads the server's counters at each
// boundary and switches the hostile peers on and off.
void DriveWindows(const Schedule& s, LoadRig& rig, LoadResult* r) {
  Server& server = rig.cluster->server(0);
  for (int w = 0; w < s.windows; ++w) {
    std::this_thread::sleep_until(s.Start(w));
    const ServerStats before = server.stats();
    const CpuTimes cpu_before = SampleCpuTimes();
    LoadWindow& win = r->windows[w];
    win.hostile = s.Hostile(w, rig.hostile != nullptr);
    if (win.hostile) rig.hostile->Begin();
    std::this_thread::sleep_until(s.Start(w + 1));
    if (win.hostile) rig.hostile->End();
    win.server = StatsChange(before, server.stats());
    const CpuUsage cpu = CpuUsageBetween(cpu_before, SampleCpuTimes(), std::chrono::duration<double>(s.window).count());
    win.self_cores = cpu.self_cores;
    win.other_cores = cpu.other_cores;
    spdlog::info("load window {} ({}): {} pushes applied, {} connections accepted, {} refused, {} handshakes "
                 "failed, {} timed out",
                 w, win.hostile ? "hostile" : "quiet", win.server.pushes_applied, win.server.connections_accepted,
                 win.server.connections_refused, win.server.handshakes_failed, win.server.connections_timed_out);
  }
}

}  // namespace

ConnectionLimits LoadBenchLimits() {
  ConnectionLimits l;
  l.handshake_timeout = std::chrono::milliseconds(2000);
  l.idle_timeout = std::chrono::milliseconds(5000);
  l.read_timeout = std::chrono::milliseconds(5000);
  return l;
}

Status ValidateLoadOptions(const LoadBenchOptions& o) {
  if (!(o.seconds > 0) || !(o.window_seconds > 0) || !(o.warmup_seconds >= 0)) {
    return InvalidArgument("--seconds and --window-seconds must be > 0, --warmup-seconds >= 0");
  }
  if (o.clients < 1) return InvalidArgument("--clients must be at least 1");
  if (o.warmup_pushes < 0) return InvalidArgument("--warmup-pushes must be >= 0");
  if (o.hostile < 0) return InvalidArgument("--hostile must be >= 0");
  if (o.hostile_kinds.empty()) return InvalidArgument("--kinds: at least one hostile kind");
  if (o.value_bytes == 0 || o.value_bytes % kRowBytes != 0) {
    return InvalidArgument("--value-bytes must be a positive multiple of 1024 (one row of 256 float32)");
  }
  if (o.interval.count() < 0 || o.trickle_interval.count() <= 0 || o.reconnect_delay.count() < 0) {
    return InvalidArgument("--interval-ms and --reconnect-ms must be >= 0, --trickle-ms > 0");
  }
  if (o.server_threads < 1 || o.client_threads < 1) return InvalidArgument("event loops need a thread");
  if (o.limits.max_connections < 1 || o.limits.handshake_timeout.count() <= 0) {
    return InvalidArgument("--max-connections and --handshake-timeout-ms must be > 0");
  }
  return Status::OK();
}

double LoadResult::RssTrendPerMinute() const {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const ResourceSample& s : samples) {
    if (s.at_seconds < 0) continue;
    const double x = s.at_seconds / 60.0, y = static_cast<double>(s.rss_bytes);
    n += 1;
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double denom = n * sxx - sx * sx;
  return n >= 2 && denom > 0 ? (n * sxy - sx * sy) / denom : 0.0;
}

StatusOr<LoadResult> RunLoadBench(const LoadBenchOptions& o) {
  RETURN_IF_ERROR(ValidateLoadOptions(o));
  ASSIGN_OR_RETURN(std::unique_ptr<LoadRig> rig, StartRig(o));
  Schedule schedule;
  schedule.window = Seconds(o.window_seconds);
  schedule.windows = std::max(1, static_cast<int>(std::ceil(o.seconds / o.window_seconds - 1e-9)));
  schedule.first = Clock::now() + Seconds(o.warmup_seconds);
  LoadResult r;
  r.windows.resize(schedule.windows);
  std::vector<std::vector<WindowTally>> tallies(o.clients, std::vector<WindowTally>(schedule.windows));
  ResourceSampler sampler(schedule.first);
  std::vector<std::thread> threads;
  for (int i = 0; i < o.clients; ++i) {
    const Clock::duration phase = o.interval * i / o.clients;
    threads.emplace_back([&, i, phase] { rig->clients[i]->Run(schedule, o.interval, phase, &tallies[i]); });
  }
  DriveWindows(schedule, *rig, &r);
  for (std::thread& t : threads) t.join();
  std::vector<ResourceSample> samples = sampler.Stop();
  std::this_thread::sleep_for(kSettle);
  r.after = Sample(schedule.first);
  Collect(tallies, &r);
  AttachSamples(std::move(samples), o.window_seconds, &r);
  r.server = rig->cluster->server(0).stats();
  if (rig->hostile) r.hostile = rig->hostile->stats();
  return r;
}

void AddLoadBench(CLI::App& bench) {
  const LoadBenchOptions d;
  CLI::App* c = bench.add_subcommand(
      "load", "One server under hostile connections (idle, trickling, wrong-secret, huge-claim) while legitimate "
              "clients push and pull: errors, latency, memory and the server's connection counters");
  c->add_option("--seconds", "Measured seconds, over every window")->default_val(d.seconds);
  c->add_option("--window-seconds", "Length of each window; windows alternate quiet and hostile, quiet first")
      ->default_val(d.window_seconds);
  c->add_option("--warmup-seconds", "Legitimate load before the first window, not counted")->default_val(d.warmup_seconds);
  c->add_option("--warmup-pushes", "Pushes each client makes back to back first (fills the server's push log)")
      ->default_val(d.warmup_pushes);
  c->add_option("--clients", "Legitimate clients (each its own transport and thread)")->default_val(d.clients);
  c->add_option("--hostile", "Hostile connections in a hostile window, dealt in turn to --kinds")->default_val(d.hostile);
  c->add_option("--kinds", "Hostile kinds, comma-separated (idle, trickle-handshake, wrong-secret, trickle-frame, "
                           "claim-huge) or all")
      ->default_val("all");
  c->add_option("--value-bytes", "Bytes of the dense variable each client pushes and pulls")->default_val(d.value_bytes);
  c->add_option("--interval-ms", "Each client's push+pull period (0: back to back)")->default_val(d.interval.count());
  c->add_option("--server-threads", "Threads of the server's event loop")->default_val(d.server_threads);
  c->add_option("--client-threads", "Threads of the clients' event loop")->default_val(d.client_threads);
  c->add_option("--handshake-timeout-ms", "Server: handshake deadline (server default 10000)")
      ->default_val(d.limits.handshake_timeout.count());
  c->add_option("--idle-timeout-ms", "Server: idle connection deadline (server default 900000)")
      ->default_val(d.limits.idle_timeout.count());
  c->add_option("--read-timeout-ms", "Server: a begun frame's deadline, before its size's share (server default 30000)")
      ->default_val(d.limits.read_timeout.count());
  c->add_option("--min-receive-rate", "Server: bytes/s a frame's deadline allows for its size")
      ->default_val(d.limits.min_receive_rate);
  c->add_option("--max-connections", "Server: connection cap (lowered to fit the fd limit)")
      ->default_val(d.limits.max_connections);
  c->add_option("--max-pending-payload", "Server: bytes of payloads being received, all connections")
      ->default_val(d.limits.max_pending_payload_bytes);
  c->add_option("--trickle-ms", "Hostile trickles: milliseconds between bytes")->default_val(d.trickle_interval.count());
  c->add_option("--reconnect-ms", "Hostile peers: pause before reconnecting once closed")
      ->default_val(d.reconnect_delay.count());
  c->add_option("--claim-bytes", "Data a claim-huge frame header claims")->default_val(d.claimed_bytes);
  c->add_option("--json", "Also write the results as JSON to this file");
}

namespace {

std::chrono::milliseconds Millis(const CLI::App& c, const char* flag) {
  return std::chrono::milliseconds(c.get_option(flag)->as<int64_t>());
}

StatusOr<std::vector<HostileKind>> ParseKinds(const std::string& text) {
  if (text == "all") return AllHostileKinds();
  std::vector<HostileKind> kinds;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    StatusOr<HostileKind> k = ParseHostileKind(item);
    if (!k.ok()) return k.status().WithContext("--kinds");
    kinds.push_back(*k);
  }
  return kinds;
}

StatusOr<LoadBenchOptions> LoadFlags(const CLI::App& c) {
  LoadBenchOptions o;
  ASSIGN_OR_RETURN(o.hostile_kinds, ParseKinds(c.get_option("--kinds")->as<std::string>()));
  o.seconds = c.get_option("--seconds")->as<double>();
  o.window_seconds = c.get_option("--window-seconds")->as<double>();
  o.warmup_seconds = c.get_option("--warmup-seconds")->as<double>();
  o.clients = c.get_option("--clients")->as<int>();
  o.warmup_pushes = c.get_option("--warmup-pushes")->as<int>();
  o.hostile = c.get_option("--hostile")->as<int>();
  o.value_bytes = c.get_option("--value-bytes")->as<uint64_t>();
  o.interval = Millis(c, "--interval-ms");
  o.server_threads = c.get_option("--server-threads")->as<int>();
  o.client_threads = c.get_option("--client-threads")->as<int>();
  o.limits.handshake_timeout = Millis(c, "--handshake-timeout-ms");
  o.limits.idle_timeout = Millis(c, "--idle-timeout-ms");
  o.limits.read_timeout = Millis(c, "--read-timeout-ms");
  o.limits.min_receive_rate = c.get_option("--min-receive-rate")->as<uint64_t>();
  o.limits.max_connections = c.get_option("--max-connections")->as<int>();
  o.limits.max_pending_payload_bytes = c.get_option("--max-pending-payload")->as<uint64_t>();
  o.trickle_interval = Millis(c, "--trickle-ms");
  o.reconnect_delay = Millis(c, "--reconnect-ms");
  o.claimed_bytes = c.get_option("--claim-bytes")->as<uint64_t>();
  RETURN_IF_ERROR(ValidateLoadOptions(o));
  return o;
}

}  // namespace

int RunLoadBenchCommand(CLI::App& bench) {
  if (!bench.got_subcommand("load")) return -1;
  const CLI::App& c = *bench.get_subcommand("load");
  auto fail = [](const Status& s) {
    spdlog::error("bench load failed: {}", s.ToString());
    return 1;
  };
  StatusOr<LoadBenchOptions> flags = LoadFlags(c);
  if (!flags.ok()) return fail(flags.status());
  const LoadBenchOptions& o = *flags;
  const std::string json_path = c.get_option("--json")->as<std::string>();
  if (!json_path.empty()) {
    std::ofstream probe(json_path, std::ios::app);  // fail now, not after a minute of measuring
    if (!probe) return fail(Unavailable("--json: cannot open '" + json_path + "' for writing"));
  }
  StatusOr<LoadResult> r = RunLoadBench(o);
  if (!r.ok()) return fail(r.status());
  fmt::print("\n{}", FormatLoadReport(o, *r));
  if (!json_path.empty()) {
    if (Status s = WriteLoadJson(o, *r, json_path); !s.ok()) return fail(s);
    fmt::print("\nwrote {}\n", json_path);
  }
  if (r->errors > 0) return fail(Internal(std::to_string(r->errors) + " legitimate calls failed"));
  return 0;
}

}  // namespace cairn
