// How `cairn bench load` results are shown: a report for people, JSON for
// tools.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "bench/load_bench.h"
#include "common/status.h"

namespace cairn {

// The setup; legitimate calls and errors; push and pull latency (p50, p99,
// p99.9, max) quiet against hostile; one row per window; the process's
// resident set (first, min, max, last, each window's peak, whether flat)
// and open descriptors, during and after the run; the server's connection counters; what each hostile
// kind saw (connects, closes by the server and how long it held them).
std::string FormatLoadReport(const LoadBenchOptions& options, const LoadResult& result);

// "Flat": the last window's peak resident set of a phase is within
// max(4 MiB, 3%) of that phase's first window's peak.
bool RssFlat(const LoadResult& result);

// {"options", "units", "legitimate": {"errors", "error_samples", "quiet" |
//  "hostile": {"push" | "pull": {"calls", "p50_us", "p99_us", ...}}},
//  "windows": [...], "rss": {"first", "min", "max", "last", "trend_per_minute"
//  (least squares; a hostile window's step shows in it), "flat", "after_run",
//  "samples": [...]}, "server": {...}, "hostile_kinds": [...]}
nlohmann::json LoadJson(const LoadBenchOptions& options, const LoadResult& result);
// Writes LoadJson to `path`; Unavailable if it cannot be written.
Status WriteLoadJson(const LoadBenchOptions& options, const LoadResult& result, const std::string& path);

}  // namespace cairn
