// LoadBench: one server serving legitimate clients while hostile peers
// attack its front door (`cairn bench load`).
//
// In this one process: a LocalCluster of one server on 127.0.0.1 (its own
// EventLoop) with the ConnectionLimits the options give; `clients`
// legitimate workers, each its own AsioTransport and PsClient with the
// job's secret (client 0 the chief, which creates the variable), on one
// shared client EventLoop, each calling from a thread of its own: push one
// dense float32 variable of `value_bytes`, then pull it, once per `interval`
// (0: back to back); and HostileLoad's peers (bench/hostile_load.h).
//
// Each client first pushes `warmup_pushes` times back to back, then runs
// paced for `warmup_seconds`; neither is counted. The measured time is cut
// into windows of `window_seconds` that alternate quiet (legitimate load
// alone) and hostile (with the hostile peers, connected at the window's
// start and closed at its end), quiet first, so both phases see the same
// machine. A call counts in the window it started in. Every failed
// legitimate call is counted (and the run goes on). Every second the
// process's resident set (VmRSS) and open descriptors are sampled: the
// server lives in this process, so its growth shows there (the clients'
// memory, and the bench's own latency histograms, are constant once they
// run). The server's counters are read at every window boundary.
//
// Everything shares the machine's cores, the hostile peers' thread too: a
// hostile window's latency includes the CPU the attack itself costs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/hostile_load.h"
#include "bench/latency_histogram.h"
#include "common/status.h"
#include "ps/connections.h"
#include "ps/server.h"

namespace cairn {

// The bench's connection limits: shorter deadlines than a server's defaults
// (handshake 10 s, idle 15 min, frame 30 s), so that idle and trickling
// peers are closed within a window; the cap, receive rate and payload
// budget are the server's.
ConnectionLimits LoadBenchLimits();

struct LoadBenchOptions {
  double seconds = 60;                          // measured, over every window
  double window_seconds = 10;                   // quiet, hostile, quiet, ...
  double warmup_seconds = 1;                    // legitimate load before the first window, not counted
  // Before that, pushes each client makes back to back: the server's push
  // log keeps the last 4096 results of each client (ps/push_log.h), so its
  // bounded growth is over before memory is sampled.
  int warmup_pushes = 4096;
  int clients = 64;                             // legitimate clients
  int hostile = 500;                            // hostile peers (0: every window quiet)
  std::vector<HostileKind> hostile_kinds = AllHostileKinds();  // dealt in turn
  uint64_t value_bytes = 16384;                 // the dense variable; a multiple of 1024
  std::chrono::milliseconds interval{20};       // each client's push+pull period; 0: back to back
  int server_threads = 1;                       // the server's EventLoop
  int client_threads = 1;                       // the clients' shared EventLoop
  ConnectionLimits limits = LoadBenchLimits();  // the server's
  std::chrono::milliseconds trickle_interval{1000};  // hostile trickles: a byte each
  std::chrono::milliseconds reconnect_delay{50};     // hostile peers, after the server closes them
  uint64_t claimed_bytes = uint64_t{1} << 30;        // a claim-huge header's data (1 GiB)
  std::chrono::milliseconds call_timeout{30000};     // each legitimate call's deadline
};

// InvalidArgument naming the bad value.
Status ValidateLoadOptions(const LoadBenchOptions& options);

// One window.
struct LoadWindow {
  bool hostile = false;
  LatencyHistogram push, pull;  // latencies of the calls that started in it
  uint64_t errors = 0;       // failed legitimate calls
  ServerStats server;        // the server's counters' change over the window
  uint64_t rss_max_bytes = 0;  // the largest sample taken in it
  uint64_t vm_max_bytes = 0;   // likewise of VmSize
  double self_cores = 0;       // cores this process kept busy (server, clients and attackers)
  double other_cores = 0;      // cores every other process used meanwhile
};

struct ResourceSample {
  double at_seconds = 0;  // since the first window began (negative: warmup)
  uint64_t rss_bytes = 0; // VmRSS
  uint64_t vm_bytes = 0;  // VmSize: a leaked, never-touched payload buffer shows here, not in VmRSS
  int open_fds = 0;
};

struct LoadResult {
  std::vector<LoadWindow> windows;
  // Every quiet / hostile window's calls together.
  LatencyHistogram quiet_push, quiet_pull, hostile_push, hostile_pull;
  uint64_t errors = 0;                     // every window's
  std::vector<std::string> error_samples;  // the first few failures' messages
  std::vector<ResourceSample> samples;     // one a second
  // One second after the last window, every call and hostile peer done (the
  // legitimate clients' connections still open): what the run left behind.
  ResourceSample after;
  ServerStats server;                      // the server's counters at the end
  std::vector<HostileKindStats> hostile;   // by HostileKind
  // Least-squares slope of VmRSS over the measured samples, bytes a minute
  // (a step up in each hostile window shows in it too: see RssFlat).
  double RssTrendPerMinute() const;
};

StatusOr<LoadResult> RunLoadBench(const LoadBenchOptions& options);

//   cairn bench load [--seconds 60] [--window-seconds 10] [--clients 64] [--hostile 500]
//                    [--kinds all|idle,wrong-secret,...] [--value-bytes 16384] [--interval-ms 20] [--handshake-timeout-ms 2000]
//                    [--idle-timeout-ms 5000] [--read-timeout-ms 5000] [--max-connections 1024]
//                    [--json FILE] ...
void AddLoadBench(CLI::App& bench);
// Runs `cairn bench load` if it was parsed (exit code; 1 if a legitimate
// call failed); -1 otherwise.
int RunLoadBenchCommand(CLI::App& bench);

}  // namespace cairn
