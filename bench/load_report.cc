#include "bench/load_report.h"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>

namespace cairn {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

double MiB(uint64_t bytes) { return static_cast<double>(bytes) / kMiB; }

std::string SizeName(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30) && bytes % (uint64_t{1} << 30) == 0) return fmt::format("{} GiB", bytes >> 30);
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= 1024 && bytes % 1024 == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} B", bytes);
}

std::string Setup(const LoadBenchOptions& o, const LoadResult& r) {
  const ConnectionLimits& l = o.limits;
  std::string pace = o.interval.count() > 0 ? fmt::format("every {} ms", o.interval.count()) : "back to back";
  std::string out = fmt::format(
      "cairn bench load: 1 server on 127.0.0.1; {} legitimate clients (authenticated; push then pull of a {} "
      "float32 variable, {} each);\n{} hostile connections during hostile windows; {} windows of {:g} s, "
      "alternating quiet / hostile, quiet first\n",
      o.clients, SizeName(o.value_bytes), pace, o.hostile, r.windows.size(), o.window_seconds);
  out += fmt::format(
      "server limits: handshake {} ms, idle {} ms, frame {} ms + its size at {}/s, at most {} connections, "
      "payload budget {}\n  (the bench's defaults are shorter than a server's: handshake 10 s, idle 15 min, "
      "frame 30 s)\n",
      l.handshake_timeout.count(), l.idle_timeout.count(), l.read_timeout.count(), SizeName(l.min_receive_rate),
      l.max_connections, SizeName(l.max_pending_payload_bytes));
  return out;
}

std::string LatencyRow(const char* op, const char* phase, const LatencyHistogram& m) {
  return fmt::format("{:<5} {:<8} {:>9} {:>9.0f} {:>9.0f} {:>9.0f} {:>9.0f}\n", op, phase, m.count(), m.p50_us(),
                     m.p99_us(), m.Percentile(0.999), m.max_us());
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

std::string Latency(const LoadResult& r) {
  std::string out = fmt::format("\nlegitimate calls: {} pushes, {} pulls, {} errors{}\n",
                                r.quiet_push.count() + r.hostile_push.count(),
                                r.quiet_pull.count() + r.hostile_pull.count(),
                                r.errors, r.errors == 0 ? "" : "  <-- FAILED");
  for (const std::string& e : r.error_samples) out += "  error: " + e + "\n";
  out += fmt::format("\n{:<5} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "call", "phase", "calls", "p50 us", "p99 us",
                     "p99.9 us", "max us");
  out += "(percentiles to within 2%: fixed-size histograms, so the bench's own memory does not grow)\n";
  out += LatencyRow("push", "quiet", r.quiet_push);
  out += LatencyRow("push", "hostile", r.hostile_push);
  out += LatencyRow("pull", "quiet", r.quiet_pull);
  out += LatencyRow("pull", "hostile", r.hostile_pull);
  out += fmt::format("hostile / quiet: push p50 {:.2f}x p99 {:.2f}x; pull p50 {:.2f}x p99 {:.2f}x\n",
                     Ratio(r.hostile_push.p50_us(), r.quiet_push.p50_us()),
                     Ratio(r.hostile_push.p99_us(), r.quiet_push.p99_us()),
                     Ratio(r.hostile_pull.p50_us(), r.quiet_pull.p50_us()),
                     Ratio(r.hostile_pull.p99_us(), r.quiet_pull.p99_us()));
  return out;
}

std::string Windows(const LoadResult& r) {
  static constexpr char kFormat[] =
      "{:>3} {:<8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>7} {:>9} {:>9} {:>7} {:>6} {:>5} {:>5}\n";
  std::string out = fmt::format("\n");
  out += fmt::format(kFormat, "win", "phase", "push p50", "push p99", "pull p50", "pull p99", "errors", "accepted",
                     "refused", "hs failed", "timed out", "RSS MiB", "Vm MiB", "cores", "other");
  for (size_t w = 0; w < r.windows.size(); ++w) {
    const LoadWindow& win = r.windows[w];
    out += fmt::format(kFormat, w, win.hostile ? "hostile" : "quiet", fmt::format("{:.0f}", win.push.p50_us()),
                       fmt::format("{:.0f}", win.push.p99_us()), fmt::format("{:.0f}", win.pull.p50_us()),
                       fmt::format("{:.0f}", win.pull.p99_us()), win.errors, win.server.connections_accepted,
                       win.server.connections_refused, win.server.handshakes_failed,
                       win.server.connections_timed_out, fmt::format("{:.1f}", MiB(win.rss_max_bytes)),
                       fmt::format("{:.0f}", MiB(win.vm_max_bytes)),
                       fmt::format("{:.2f}", win.self_cores), fmt::format("{:.2f}", win.other_cores));
  }
  out += "(latencies in us; counters: the server's change over the window; RSS, Vm: the window's largest sample;\n"
         " cores: this process's (server, clients, attackers), other: every other process's)\n";
  return out;
}

struct RssSummary {
  uint64_t first = 0, min = 0, max = 0, last = 0;
  int fds_first = 0, fds_max = 0, fds_last = 0;
  uint64_t vm_first = 0, vm_max = 0, vm_last = 0;
};

RssSummary Summarize(const LoadResult& r) {
  RssSummary s;
  bool any = false;
  for (const ResourceSample& x : r.samples) {
    if (x.at_seconds < 0) continue;
    if (!any) {
      s.first = s.min = x.rss_bytes;
      s.fds_first = x.open_fds;
      s.vm_first = x.vm_bytes;
      any = true;
    }
    s.min = std::min(s.min, x.rss_bytes);
    s.max = std::max(s.max, x.rss_bytes);
    s.last = x.rss_bytes;
    s.fds_max = std::max(s.fds_max, x.open_fds);
    s.fds_last = x.open_fds;
    s.vm_max = std::max(s.vm_max, x.vm_bytes);
    s.vm_last = x.vm_bytes;
  }
  return s;
}

// Each phase's window peaks, in order.
std::vector<uint64_t> Peaks(const LoadResult& r, bool hostile) {
  std::vector<uint64_t> peaks;
  for (const LoadWindow& w : r.windows) {
    if (w.hostile == hostile && w.rss_max_bytes > 0) peaks.push_back(w.rss_max_bytes);
  }
  return peaks;
}

std::string PeakList(const std::vector<uint64_t>& peaks) {
  std::string out;
  for (uint64_t p : peaks) out += fmt::format("{}{:.1f}", out.empty() ? "" : ", ", MiB(p));
  return out.empty() ? "-" : out;
}

std::string Memory(const LoadBenchOptions& o, const LoadResult& r) {
  const RssSummary s = Summarize(r);
  std::string out = fmt::format(
      "\nprocess RSS (VmRSS, the server is in this process; {} samples, one a second): first {:.1f} MiB, min {:.1f}, "
      "max {:.1f}, last {:.1f}\n",
      r.samples.size(), MiB(s.first), MiB(s.min), MiB(s.max), MiB(s.last));
  out += fmt::format("  window peaks, quiet: {} MiB; hostile: {} MiB -> {}\n", PeakList(Peaks(r, false)),
                     PeakList(Peaks(r, true)), RssFlat(r) ? "flat (no growth from window to window)" : "GROWING");
  out += fmt::format("open fds: first {}, max {}, last {}; VmSize: first {:.0f} MiB, max {:.0f}, last {:.0f}\n",
                     s.fds_first, s.fds_max, s.fds_last, MiB(s.vm_first), MiB(s.vm_max), MiB(s.vm_last));
  out += fmt::format("1 s after the run (hostile peers closed, the {} legitimate connections open): RSS {:.1f} MiB, "
                     "VmSize {:.0f} MiB, {} open fds\n",
                     o.clients, MiB(r.after.rss_bytes), MiB(r.after.vm_bytes), r.after.open_fds);
  return out;
}

std::string ServerCounters(const LoadResult& r) {
  const ServerStats& s = r.server;
  return fmt::format(
      "\nserver counters (whole run): connections accepted {}, refused (over the cap) {}, handshakes failed {}, "
      "timed out {},\n  frames rejected {}, requests failed {}; pushes applied {}, pulls served {}\n",
      s.connections_accepted, s.connections_refused, s.handshakes_failed, s.connections_timed_out, s.frames_rejected,
      s.requests_failed, s.pushes_applied, s.pulls_served);
}

std::string HostileKinds(const LoadBenchOptions& o, const LoadResult& r) {
  if (r.hostile.empty()) return "";
  static constexpr char kFormat[] = "{:<18} {:>5} {:>8} {:>7} {:>6} {:>10} {:>9} {:>9} {:>8} {:>10}\n";
  std::string out = "\nhostile peers (every hostile window together):\n";
  out += fmt::format(kFormat, "kind", "peers", "connects", "failed", "authed", "closed by", "held p50", "held max",
                     "open at", "unexpected");
  out += fmt::format(kFormat, "", "", "", "", "", "server", "s", "s", "end", "");
  for (int k = 0; k < static_cast<int>(r.hostile.size()); ++k) {
    const HostileKindStats& h = r.hostile[k];
    if (PeersOfKind(o.hostile, o.hostile_kinds, static_cast<HostileKind>(k)) == 0) continue;
    out += fmt::format(kFormat, HostileKindName(static_cast<HostileKind>(k)),
                       PeersOfKind(o.hostile, o.hostile_kinds, static_cast<HostileKind>(k)), h.connects,
                       h.connect_failures, h.authenticated, h.closed_by_server,
                       fmt::format("{:.2f}", h.HeldPercentile(0.5)), fmt::format("{:.2f}", h.HeldPercentile(1.0)),
                       h.closed_at_end, h.unexpected);
  }
  out += fmt::format(
      "(trickles: a byte every {} ms; closed peers reconnect after {} ms. trickle-frame and claim-huge are\n"
      " misbehaving *authenticated* peers: they hold the job's secret, since only such a peer gets to send a frame;\n"
      " a claim-huge header claims {} and stalls: its deadline is the frame timeout plus the claim at the minimum\n"
      " receive rate, so within a window it is closed only by the window's end, holding at most the 1 MiB first\n"
      " payload buffer; unexpected: a proof sent to a wrong secret, or a handshake the authenticated kinds failed)\n",
      o.trickle_interval.count(), o.reconnect_delay.count(), SizeName(o.claimed_bytes));
  return out;
}

nlohmann::json LatencyJson(const LatencyHistogram& m) {
  return {{"calls", m.count()},  {"mean_us", m.mean_us()},          {"p50_us", m.p50_us()},
          {"p99_us", m.p99_us()}, {"p999_us", m.Percentile(0.999)}, {"max_us", m.max_us()}};
}

nlohmann::json ServerJson(const ServerStats& s) {
  return {{"connections_accepted", s.connections_accepted}, {"connections_refused", s.connections_refused},
          {"handshakes_failed", s.handshakes_failed},       {"connections_timed_out", s.connections_timed_out},
          {"frames_rejected", s.frames_rejected},           {"requests_failed", s.requests_failed},
          {"pushes_applied", s.pushes_applied},             {"pulls_served", s.pulls_served}};
}

nlohmann::json OptionsJson(const LoadBenchOptions& o) {
  const ConnectionLimits& l = o.limits;
  return {{"seconds", o.seconds},
          {"window_seconds", o.window_seconds},
          {"warmup_seconds", o.warmup_seconds},
          {"warmup_pushes", o.warmup_pushes},
          {"clients", o.clients},
          {"hostile", o.hostile},
          {"value_bytes", o.value_bytes},
          {"interval_ms", o.interval.count()},
          {"server_threads", o.server_threads},
          {"client_threads", o.client_threads},
          {"handshake_timeout_ms", l.handshake_timeout.count()},
          {"idle_timeout_ms", l.idle_timeout.count()},
          {"read_timeout_ms", l.read_timeout.count()},
          {"min_receive_rate", l.min_receive_rate},
          {"max_connections", l.max_connections},
          {"max_pending_payload_bytes", l.max_pending_payload_bytes},
          {"trickle_ms", o.trickle_interval.count()},
          {"reconnect_ms", o.reconnect_delay.count()},
          {"claimed_bytes", o.claimed_bytes}};
}

nlohmann::json RssJson(const LoadResult& r) {
  const RssSummary s = Summarize(r);
  nlohmann::json samples = nlohmann::json::array();
  for (const ResourceSample& x : r.samples) samples.push_back({x.at_seconds, x.rss_bytes, x.vm_bytes, x.open_fds});
  return {{"first", s.first},   {"min", s.min},
          {"max", s.max},       {"last", s.last},
          {"trend_per_minute", r.RssTrendPerMinute()}, {"flat", RssFlat(r)},
          {"fds_first", s.fds_first}, {"fds_max", s.fds_max}, {"fds_last", s.fds_last},
          {"after_run", {{"rss_bytes", r.after.rss_bytes}, {"vm_bytes", r.after.vm_bytes}, {"open_fds", r.after.open_fds}}},
          {"samples_columns", {"at_seconds", "rss_bytes", "vm_bytes", "open_fds"}}, {"samples", samples}};
}

}  // namespace

bool RssFlat(const LoadResult& r) {
  for (bool hostile : {false, true}) {
    const std::vector<uint64_t> peaks = Peaks(r, hostile);
    if (peaks.size() < 2) continue;
    const double allowed = std::max(4 * kMiB, 0.03 * static_cast<double>(peaks.front()));
    if (static_cast<double>(peaks.back()) > static_cast<double>(peaks.front()) + allowed) return false;
  }
  return true;
}

std::string FormatLoadReport(const LoadBenchOptions& o, const LoadResult& r) {
  return Setup(o, r) + Latency(r) + Windows(r) + Memory(o, r) + ServerCounters(r) + HostileKinds(o, r);
}

nlohmann::json LoadJson(const LoadBenchOptions& o, const LoadResult& r) {
  nlohmann::json j;
  j["options"] = OptionsJson(o);
  j["units"] = {{"latency", "microseconds per call"}, {"rss", "bytes"}, {"held", "seconds"}};
  j["legitimate"] = {{"errors", r.errors},
                     {"error_samples", r.error_samples},
                     {"quiet", {{"push", LatencyJson(r.quiet_push)}, {"pull", LatencyJson(r.quiet_pull)}}},
                     {"hostile", {{"push", LatencyJson(r.hostile_push)}, {"pull", LatencyJson(r.hostile_pull)}}}};
  j["windows"] = nlohmann::json::array();
  for (const LoadWindow& w : r.windows) {
    j["windows"].push_back({{"hostile", w.hostile},
                            {"push", LatencyJson(w.push)},
                            {"pull", LatencyJson(w.pull)},
                            {"errors", w.errors},
                            {"server", ServerJson(w.server)},
                            {"rss_max", w.rss_max_bytes},
                            {"vm_max", w.vm_max_bytes},
                            {"self_cores", w.self_cores},
                            {"other_cores", w.other_cores}});
  }
  j["rss"] = RssJson(r);
  j["server"] = ServerJson(r.server);
  j["hostile_kinds"] = nlohmann::json::array();
  for (int k = 0; k < static_cast<int>(r.hostile.size()); ++k) {
    const HostileKindStats& h = r.hostile[k];
    j["hostile_kinds"].push_back({{"kind", HostileKindName(static_cast<HostileKind>(k))},
                                  {"peers", PeersOfKind(o.hostile, o.hostile_kinds, static_cast<HostileKind>(k))},
                                  {"connects", h.connects},
                                  {"connect_failures", h.connect_failures},
                                  {"authenticated", h.authenticated},
                                  {"closed_by_server", h.closed_by_server},
                                  {"closed_at_end", h.closed_at_end},
                                  {"unexpected", h.unexpected},
                                  {"held_p50", h.HeldPercentile(0.5)},
                                  {"held_max", h.HeldPercentile(1.0)}});
  }
  return j;
}

Status WriteLoadJson(const LoadBenchOptions& o, const LoadResult& r, const std::string& path) {
  std::ofstream f(path);
  if (!f) return Unavailable("cannot open '" + path + "' for writing");
  f << LoadJson(o, r).dump(2) << "\n";
  if (!f.flush()) return Unavailable("cannot write '" + path + "'");
  return Status::OK();
}

}  // namespace cairn
