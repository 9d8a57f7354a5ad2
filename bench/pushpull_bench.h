// PushPullBench: how fast workers push and pull one variable through real
// Cairn servers, next to what the same loopback TCP does with nothing on top.
//
// For each cluster shape and value size, in this one process:
//   - the raw baseline (RawSocketBench): per (worker, server) pair, the bytes
//     that worker sends that server per call;
//   - a LocalCluster of S servers on 127.0.0.1 and W worker threads, each with
//     its own AsioTransport and PsClient on one shared EventLoop, all pushing
//     and/or pulling the same float32 variable of M bytes, shape
//     [M / 1024, 256], SGD with a tiny learning rate (values stay finite).
//     With more than one server the variable is split by rows across all.
// Value bytes are counted once per call: a push of M bytes counts M, a pull
// M, and one push-then-pull iteration M. Throughput is the aggregate of all
// workers, in GB/s (1e9 bytes/s).
//
// The machine's speed drifts (other processes, a busy hypervisor), and a
// ratio is only meaningful if both sides saw the same machine: so each case
// interleaves its workloads in rounds (raw, push, pull, push+pull, raw, ...)
// and sums each workload over its rounds.
//
// Authentication (--auth): the servers either require the handshake with the
// job's secret (handshake, the default: what a job runs) or are started
// insecure with clients that hold no secret (none). With both, each case
// runs one cluster of each kind side by side, and every round measures each
// workload on both, one right after the other (the order alternating by
// round); the cost of authentication is the median over rounds of each
// round's throughput ratio, authenticated / insecure. The handshake happens
// once per connection, so on long-lived connections it should cost nothing
// per call; its own cost is ConnectBench's (bench/connect_bench.h). No
// per-frame MAC or TLS is offered, so neither is measured.
//
// Depth (--depth N > 1): push and pull are also measured with N calls in
// flight per worker (PsClient::PushAsync / PullAsync), in the same rounds
// right after their one-at-a-time runs; the gain is the median over rounds of
// each round's throughput ratio, depth N / depth 1.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/timed_loop.h"
#include "common/status.h"

namespace cairn {

// S servers and W workers.
struct ClusterShape {
  int servers = 1;
  int workers = 1;

  // "SxW", e.g. "2x2".
  std::string ToString() const;
  // Parses "SxW" with S, W >= 1; InvalidArgument naming the text otherwise.
  static StatusOr<ClusterShape> Parse(const std::string& text);
  bool operator==(const ClusterShape&) const = default;
};

enum class AuthMode { kNone, kHandshake, kBoth };
const char* AuthModeName(AuthMode mode);  // "none", "handshake", "both"
// "none" | "handshake" | "both"; InvalidArgument otherwise.
StatusOr<AuthMode> ParseAuthMode(const std::string& text);

// Which workloads a case measures; the raw baseline always runs.
struct PushPullOps {
  bool push = true;
  bool pull = true;
  bool push_pull = true;
};

struct PushPullOptions {
  // Value sizes in bytes; each a positive multiple of 1024 (one row is 256
  // float32). Default: 4 KiB, 1 MiB, 16 MiB.
  std::vector<uint64_t> value_bytes = {4096, uint64_t{1} << 20, uint64_t{16} << 20};
  // Default: 1 server + 1 worker, then 2 servers + 2 workers.
  std::vector<ClusterShape> configs = {{1, 1}, {2, 2}};
  PushPullOps ops;                                   // default: all three
  // Per workload and case: `seconds` measured in total, split evenly over
  // the rounds; `warmup_seconds` before each workload's first round.
  // Default: 2.0 s measured, 0.3 s warmup.
  TimedLoopOptions timing;
  int rounds = 4;                                    // interleaved rounds per case
  double rewarm_seconds = 0.05;                      // unmeasured time before each later round
  int event_loop_threads = 1;                        // threads of the shared EventLoop (as cluster.io_threads)
  double learning_rate = 1e-9;                       // SGD step: small enough that values stay finite
  std::chrono::milliseconds call_timeout{30000};     // each PsClient call's deadline
  AuthMode auth = AuthMode::kHandshake;              // see above
  // Connects (connect + handshake + close) ConnectBench times per mode that
  // `auth` names, once per run; 0: skip it.
  int connects = 2000;
  int depth = 1;  // > 1: push and pull also with this many calls in flight
};

// Per round, a workload's throughput authenticated over insecure.
struct AuthRatios {
  std::vector<double> push, pull, push_pull;
};

// The median of `ratios`; 0 when empty.
double MedianRatio(std::vector<double> ratios);

// One (cluster shape, value size) case. A workload that was not run is all
// zeros.
struct PushPullResult {
  ClusterShape config;
  uint64_t value_bytes = 0;
  // push, pull and push_pull are the authenticated servers' unless the run
  // is AuthMode::kNone; with kBoth the insecure servers' are beside them.
  AuthMode auth = AuthMode::kHandshake;
  Measurement raw;
  Measurement push;
  Measurement pull;
  Measurement push_pull;
  Measurement insecure_push, insecure_pull, insecure_push_pull;  // kBoth only
  AuthRatios auth_over_none;                                     // kBoth only
  int depth = 1;                                                 // options.depth
  Measurement deep_push, deep_pull;                              // depth > 1 only
  AuthRatios deep_over_one;                                      // push, pull per round: depth N / depth 1

  // m's throughput over the raw baseline's; 0 when either is missing.
  double RatioToRaw(const Measurement& m) const;
};

// Checks sizes, shapes and timing; InvalidArgument naming the bad value.
Status ValidatePushPullOptions(const PushPullOptions& options);

// Runs one case on a fresh cluster and fresh raw connections. Returns the
// first error a PsClient call or the baseline reports.
StatusOr<PushPullResult> RunPushPullCase(const ClusterShape& config, uint64_t value_bytes,
                                         const PushPullOptions& options);

// Runs every (config, size) case in order, configs outermost.
StatusOr<std::vector<PushPullResult>> RunPushPullBench(const PushPullOptions& options);

}  // namespace cairn
