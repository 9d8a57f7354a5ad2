// How push/pull results are shown: a table for people, JSON for tools.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/pushpull_bench.h"
#include "common/status.h"

namespace cairn {

// One row per (config, size, workload): GB/s, the ratio to the raw baseline,
// p50/p99 latency in microseconds, the number of calls, this process's CPU
// microseconds, page faults and context switches per call, and the cores
// other processes used meanwhile; then the push/raw, pull/raw and
// push+pull/raw ratios per case.
std::string FormatPushPullTable(const std::vector<PushPullResult>& results);

// {"options": {...}, "units": {...}, "results": [{"config", "servers",
//  "workers", "value_bytes", "ratio_to_raw": {"push", "pull", "push_pull"},
//  "raw" | "push" | "pull" | "push_pull": {"gbps", "bytes", "calls", "seconds",
//  "p50_us", "p99_us", "self_cores", "other_cores", "cpu_us_per_call",
//  "page_faults_per_call", "context_switches_per_call"}}]}
nlohmann::json PushPullJson(const PushPullOptions& options, const std::vector<PushPullResult>& results);

// Writes PushPullJson to `path`; Unavailable if the file cannot be written.
Status WritePushPullJson(const PushPullOptions& options, const std::vector<PushPullResult>& results,
                         const std::string& path);

}  // namespace cairn
