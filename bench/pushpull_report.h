// How push/pull results are shown: a table for people, JSON for tools.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/connect_bench.h"
#include "bench/pushpull_bench.h"
#include "common/status.h"

namespace cairn {

// One row per (config, size, workload): GB/s, the ratio to the raw baseline,
// p50/p99 latency in microseconds, the number of calls, this process's CPU
// microseconds, page faults and context switches per call, and the cores
// other processes used meanwhile; then the push/raw, pull/raw and
// push+pull/raw ratios per case. With AuthMode::kBoth the insecure
// servers' rows follow each case's ("push none", ...).
std::string FormatPushPullTable(const std::vector<PushPullResult>& results);

// With AuthMode::kBoth, per case the median (and range) over rounds of each
// workload's throughput with the handshake / without; then the connection
// cost table (connects per second, p50/p99 latency, CPU per connect, per
// mode) if `connects` is not empty; then that per-frame MAC and TLS are not
// offered.
std::string FormatAuthCost(const std::vector<PushPullResult>& results, const std::vector<ConnectCost>& connects);

// {"options": {...}, "units": {...}, "results": [{"config", "servers",
//  "workers", "value_bytes", "auth", "ratio_to_raw": {"push", "pull", "push_pull"},
//  "raw" | "push" | "pull" | "push_pull": {"gbps", "bytes", "calls", "seconds",
//  "p50_us", "p99_us", "self_cores", "other_cores", "cpu_us_per_call",
//  "page_faults_per_call", "context_switches_per_call"},
//  with --auth both: "insecure": {"push" | "pull" | "push_pull": {...}},
//  "auth_over_none": {"push" | ...: {"median", "rounds"}}}],
//  "connects": [{"handshake", "connects", "seconds", "connects_per_second",
//  "p50_us", "p99_us", "cpu_us_per_connect"}], "per_frame_mac", "tls"}
nlohmann::json PushPullJson(const PushPullOptions& options, const std::vector<PushPullResult>& results,
                            const std::vector<ConnectCost>& connects);

// Writes PushPullJson to `path`; Unavailable if the file cannot be written.
Status WritePushPullJson(const PushPullOptions& options, const std::vector<PushPullResult>& results,
                         const std::vector<ConnectCost>& connects, const std::string& path);

}  // namespace cairn
