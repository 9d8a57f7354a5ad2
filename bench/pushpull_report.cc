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
// With AuthMode::kBoth, beside the authenticated ones.
constexpr Workload kInsecureWorkloads[] = {
    {"push none", "push", &PushPullResult::insecure_push},
    {"pull none", "pull", &PushPullResult::insecure_pull},
    {"push+pull none", "push_pull", &PushPullResult::insecure_push_pull},
};

// What a workload's rows were measured against.
const char* ServersName(AuthMode mode) {
  switch (mode) {
    case AuthMode::kNone: return "insecure servers, clients without a secret (--auth none)";
    case AuthMode::kHandshake: return "servers requiring the handshake with the job's secret (--auth handshake)";
    case AuthMode::kBoth: return "rows without a suffix: with the handshake; 'none': insecure servers (--auth both)";
  }
  return "?";
}

double PerCall(uint64_t count, const Measurement& m) {
  return m.calls > 0 ? static_cast<double>(count) / static_cast<double>(m.calls) : 0.0;
}

constexpr char kRowFormat[] = "{:<6} {:>7}  {:<14} {:>7} {:>6} {:>9} {:>9} {:>7} {:>8} {:>7} {:>6} {:>6}\n";

std::string Header() {
  return fmt::format(kRowFormat, "config", "value", "workload", "GB/s", "/raw", "p50 us", "p99 us", "calls",
                     "cpu us", "faults", "csw", "other");
}

// `label` replaces the workload's own (for the rows at depth N).
std::string Row(const PushPullResult& r, const Workload& w, const std::string& label = "") {
  const Measurement& m = r.*w.field;
  const std::string ratio = w.field == &PushPullResult::raw ? "-" : fmt::format("{:.2f}", r.RatioToRaw(m));
  return fmt::format(kRowFormat, r.config.ToString(), SizeName(r.value_bytes), label.empty() ? w.label : label.c_str(),
                     fmt::format("{:.3f}", m.gbps()),
                     ratio, fmt::format("{:.1f}", m.p50_us()), fmt::format("{:.1f}", m.p99_us()), m.calls,
                     fmt::format("{:.1f}", m.cpu_us_per_call()), fmt::format("{:.1f}", PerCall(m.page_faults, m)),
                     fmt::format("{:.1f}", PerCall(m.context_switches, m)), fmt::format("{:.2f}", m.other_cores()));
}

nlohmann::json MeasurementJson(const Measurement& m) {
  return {{"gbps", m.gbps()},
          {"bytes", m.bytes},
          {"calls", m.calls},
          {"seconds", m.seconds},
          {"p50_us", m.p50_us()},
          {"p99_us", m.p99_us()},
          {"self_cores", m.self_cores()},
          {"other_cores", m.other_cores()},
          {"cpu_us_per_call", m.cpu_us_per_call()},
          {"page_faults_per_call", PerCall(m.page_faults, m)},
          {"context_switches_per_call", PerCall(m.context_switches, m)}};
}

// "0.98 (0.95-1.01)": the median and the range over rounds; "-" if not run.
std::string RatioCell(const std::vector<double>& rounds) {
  if (rounds.empty()) return "-";
  const auto [lo, hi] = std::minmax_element(rounds.begin(), rounds.end());
  return fmt::format("{:.3f} ({:.2f}-{:.2f})", MedianRatio(rounds), *lo, *hi);
}

nlohmann::json RatiosJson(const std::vector<double>& rounds) {
  return {{"median", MedianRatio(rounds)}, {"rounds", rounds}};
}

nlohmann::json ResultJson(const PushPullResult& r) {
  nlohmann::json j{{"config", r.config.ToString()},
                   {"servers", r.config.servers},
                   {"workers", r.config.workers},
                   {"value_bytes", r.value_bytes},
                   {"auth", r.auth == AuthMode::kNone ? "none" : "handshake"}};
  for (const Workload& w : kWorkloads) j[w.key] = MeasurementJson(r.*w.field);
  if (r.auth == AuthMode::kBoth) {
    for (const Workload& w : kInsecureWorkloads) j["insecure"][w.key] = MeasurementJson(r.*w.field);
    j["auth_over_none"] = {{"push", RatiosJson(r.auth_over_none.push)},
                           {"pull", RatiosJson(r.auth_over_none.pull)},
                           {"push_pull", RatiosJson(r.auth_over_none.push_pull)}};
  }
  j["ratio_to_raw"] = {{"push", r.RatioToRaw(r.push)},
                       {"pull", r.RatioToRaw(r.pull)},
                       {"push_pull", r.RatioToRaw(r.push_pull)}};
  if (r.depth > 1) {
    j["depth"] = r.depth;
    j["deep"] = {{"push", MeasurementJson(r.deep_push)}, {"pull", MeasurementJson(r.deep_pull)}};
    j["deep_over_one"] = {{"push", RatiosJson(r.deep_over_one.push)}, {"pull", RatiosJson(r.deep_over_one.pull)}};
    j["ratio_to_raw"]["deep_push"] = r.RatioToRaw(r.deep_push);
    j["ratio_to_raw"]["deep_pull"] = r.RatioToRaw(r.deep_pull);
  }
  return j;
}

// Other processes' load competes for the same cores: say so when it was
// large enough to move the ratios.
std::string BusyMachineNote(const std::vector<PushPullResult>& results) {
  constexpr double kBusyCores = 0.2;
  double worst = 0;
  for (const PushPullResult& r : results) {
    for (const Workload& w : kWorkloads) worst = std::max(worst, (r.*w.field).other_cores());
    for (const Workload& w : kInsecureWorkloads) worst = std::max(worst, (r.*w.field).other_cores());
  }
  if (worst < kBusyCores) return "";
  return fmt::format("note: other processes kept up to {:.2f} cores busy during a measurement (column 'other');\n"
                     "      results measured under that load understate what the machine can do.\n", worst);
}

}  // namespace

std::string FormatPushPullTable(const std::vector<PushPullResult>& results) {
  std::string out;
  if (!results.empty()) out += fmt::format("({})\n", ServersName(results.front().auth));
  out += Header();
  for (const PushPullResult& r : results) {
    for (const Workload& w : kWorkloads) out += Row(r, w);
    if (r.depth > 1) {
      out += Row(r, Workload{"", "", &PushPullResult::deep_push}, fmt::format("push x{}", r.depth));
      out += Row(r, Workload{"", "", &PushPullResult::deep_pull}, fmt::format("pull x{}", r.depth));
    }
    if (r.auth != AuthMode::kBoth) continue;
    for (const Workload& w : kInsecureWorkloads) {
      if ((r.*w.field).calls > 0) out += Row(r, w);
    }
  }
  out += "(GB/s: 1e9 value bytes/s, all workers; cpu us, faults, csw: this process's CPU microseconds, page\n"
         " faults and context switches per call; other: cores other processes used meanwhile)\n";
  out += BusyMachineNote(results);
  out += fmt::format("\n{:<6} {:>7}  {:>9} {:>9} {:>14}\n", "config", "value", "push/raw", "pull/raw", "push+pull/raw");
  for (const PushPullResult& r : results) {
    out += fmt::format("{:<6} {:>7}  {:>9.2f} {:>9.2f} {:>14.2f}\n", r.config.ToString(), SizeName(r.value_bytes),
                       r.RatioToRaw(r.push), r.RatioToRaw(r.pull), r.RatioToRaw(r.push_pull));
  }
  if (!results.empty() && results.front().depth > 1) {
    out += fmt::format("\nthroughput with {} calls in flight per worker / one at a time (median of per-round ratios;\n"
                       "range over rounds; 'push xN' and 'pull xN' rows above):\n{:<6} {:>7}  {:>20} {:>20}\n",
                       results.front().depth, "config", "value", "push", "pull");
    for (const PushPullResult& r : results) {
      out += fmt::format("{:<6} {:>7}  {:>20} {:>20}\n", r.config.ToString(), SizeName(r.value_bytes),
                         RatioCell(r.deep_over_one.push), RatioCell(r.deep_over_one.pull));
    }
  }
  return out;
}

namespace {


std::string AuthRatioTable(const std::vector<PushPullResult>& results) {
  std::string out = fmt::format(
      "\nthroughput with the handshake / without (median of per-round ratios; range over rounds):\n"
      "{:<6} {:>7}  {:>20} {:>20} {:>20}\n",
      "config", "value", "push", "pull", "push+pull");
  for (const PushPullResult& r : results) {
    out += fmt::format("{:<6} {:>7}  {:>20} {:>20} {:>20}\n", r.config.ToString(), SizeName(r.value_bytes),
                       RatioCell(r.auth_over_none.push), RatioCell(r.auth_over_none.pull),
                       RatioCell(r.auth_over_none.push_pull));
  }
  return out;
}

const ConnectCost* Find(const std::vector<ConnectCost>& costs, bool authenticated) {
  for (const ConnectCost& c : costs) {
    if (c.authenticated == authenticated) return &c;
  }
  return nullptr;
}

std::string ConnectTable(const std::vector<ConnectCost>& costs) {
  if (costs.empty()) return "";
  static constexpr char kFormat[] = "{:<10} {:>8} {:>9} {:>8} {:>8} {:>8} {:>10}\n";
  std::string out = fmt::format(
      "\nconnection cost: connect + handshake + close, one after another from one client thread; 1 server, its own\n"
      "event-loop thread; {} connects per mode, the modes in alternating blocks:\n",
      costs.front().m.calls);
  out += fmt::format(kFormat, "handshake", "connects", "conn/s", "p50 us", "p99 us", "max us", "cpu us/conn");
  for (const ConnectCost& c : costs) {
    out += fmt::format(kFormat, c.authenticated ? "HMAC" : "none", c.m.calls, fmt::format("{:.0f}", c.per_second()),
                       fmt::format("{:.1f}", c.m.p50_us()), fmt::format("{:.1f}", c.m.p99_us()),
                       fmt::format("{:.1f}", c.m.latencies_us.empty() ? 0.0 : c.m.latencies_us.back()),
                       fmt::format("{:.1f}", c.m.cpu_us_per_call()));
  }
  const ConnectCost* a = Find(costs, true);
  const ConnectCost* n = Find(costs, false);
  if (a && n && n->per_second() > 0) {
    out += fmt::format("HMAC / none: {:.2f}x the connects per second, p50 {:+.1f} us per connection\n",
                       a->per_second() / n->per_second(), a->m.p50_us() - n->m.p50_us());
  }
  out += "(cpu: this process, client and server both; 'none' still exchanges the three handshake messages)\n";
  return out;
}

nlohmann::json ConnectJson(const ConnectCost& c) {
  return {{"handshake", c.authenticated ? "hmac" : "none"},
          {"connects", c.m.calls},
          {"seconds", c.m.seconds},
          {"connects_per_second", c.per_second()},
          {"p50_us", c.m.p50_us()},
          {"p99_us", c.m.p99_us()},
          {"cpu_us_per_connect", c.m.cpu_us_per_call()}};
}

}  // namespace

std::string FormatAuthCost(const std::vector<PushPullResult>& results, const std::vector<ConnectCost>& connects) {
  std::string out;
  if (!results.empty() && results.front().auth == AuthMode::kBoth) out += AuthRatioTable(results);
  out += ConnectTable(connects);
  out += "per-frame MAC / TLS: not offered\n";
  return out;
}

nlohmann::json PushPullJson(const PushPullOptions& o, const std::vector<PushPullResult>& results,
                            const std::vector<ConnectCost>& connects) {
  nlohmann::json configs = nlohmann::json::array();
  for (const ClusterShape& c : o.configs) configs.push_back(c.ToString());
  nlohmann::json ops = nlohmann::json::array();
  if (o.ops.push) ops.push_back("push");
  if (o.ops.pull) ops.push_back("pull");
  if (o.ops.push_pull) ops.push_back("pushpull");
  nlohmann::json j;
  j["options"] = {{"auth", AuthModeName(o.auth)},
                  {"connects", o.connects},
                  {"sizes", o.value_bytes},
                  {"configs", configs},
                  {"ops", ops},
                  {"seconds", o.timing.seconds},
                  {"warmup_seconds", o.timing.warmup_seconds},
                  {"rounds", o.rounds},
                  {"rewarm_seconds", o.rewarm_seconds},
                  {"event_loop_threads", o.event_loop_threads},
                  {"learning_rate", o.learning_rate}};
  j["units"] = {{"gbps", "1e9 value bytes per second, all workers"}, {"latency", "microseconds per call"}};
  j["results"] = nlohmann::json::array();
  for (const PushPullResult& r : results) j["results"].push_back(ResultJson(r));
  j["connects"] = nlohmann::json::array();
  for (const ConnectCost& c : connects) j["connects"].push_back(ConnectJson(c));
  j["per_frame_mac"] = "not offered";
  j["tls"] = "not offered";
  return j;
}

Status WritePushPullJson(const PushPullOptions& options, const std::vector<PushPullResult>& results,
                         const std::vector<ConnectCost>& connects, const std::string& path) {
  std::ofstream f(path);
  if (!f) return Unavailable("cannot open '" + path + "' for writing");
  f << PushPullJson(options, results, connects).dump(2) << "\n";
  if (!f.flush()) return Unavailable("cannot write '" + path + "'");
  return Status::OK();
}

}  // namespace cairn
