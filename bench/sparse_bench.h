// SparseBench: sparse pull and push through real servers, beside raw
// sockets moving the same bytes, and what a large table costs a server in
// memory.
//
// Pull and push: for each (unique ids per call, dim) point and cluster
// shape, a LocalCluster of S servers and W worker threads (each its own
// AsioTransport and PsClient, servers and workers on separate event loops,
// as in separate processes), one Adagrad table. Each worker has a fixed set
// of unique ids (its rows exist after the first push, so the steady state of
// a trained table is measured) and either pulls their rows or pushes one
// gradient row per id. A call counts its ids' bytes and their rows' bytes
// (8 + 4 dim per id). The raw baseline (RawSocketBench) sends each server the
// same bytes per call as one message and waits for an 8-byte ack. Workloads
// are interleaved in rounds (raw, pull, push, raw, ...), as in PushPullBench;
// a ratio to raw is the median over rounds of that round's ratio (this
// machine's speed wanders from one second to the next), with its range.
//
// Memory: one SparseTable (no servers, no sockets) filled with `memory_rows`
// rows of dim 16 under Adagrad, in pushes of 65,536 ids; the table's own
// accounting (payload: ids, values, slots; allocated: record blocks and
// index) and the process's resident-set growth.
#pragma once

#include <cstdint>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/pushpull_bench.h"
#include "bench/timed_loop.h"
#include "common/status.h"

namespace cairn {

struct SparsePoint {
  int64_t ids = 0;  // unique ids per call
  int32_t dim = 0;
};

struct SparseBenchOptions {
  std::vector<SparsePoint> points = {{4096, 16}, {65536, 16}, {65536, 64}};
  std::vector<ClusterShape> configs = {{1, 1}, {2, 2}};
  TimedLoopOptions timing;  // per workload and case, split over the rounds
  int rounds = 4;
  double rewarm_seconds = 0.05;
  int event_loop_threads = 1;
  int64_t memory_rows = 10'000'000;  // 0: skip the memory measurement
};

struct SparseResult {
  ClusterShape config;
  SparsePoint point;
  Measurement raw, pull, push;  // over all rounds
  std::vector<double> pull_ratios, push_ratios;  // per round, to that round's raw
  double RatioToRaw(const Measurement& m) const;  // of the totals
  double PullRatio() const { return MedianRatio(pull_ratios); }
  double PushRatio() const { return MedianRatio(push_ratios); }
  // Ids per second of a workload (all workers).
  double IdsPerSec(const Measurement& m) const;
};

struct SparseMemoryResult {
  int64_t rows = 0;
  int32_t dim = 16;
  uint64_t payload_bytes = 0;
  uint64_t allocated_bytes = 0;
  uint64_t rss_growth_bytes = 0;
  double fill_seconds = 0;
  double allocated_over_payload() const { return payload_bytes ? double(allocated_bytes) / payload_bytes : 0; }
  double rss_over_payload() const { return payload_bytes ? double(rss_growth_bytes) / payload_bytes : 0; }
};

StatusOr<std::vector<SparseResult>> RunSparsePullPush(const SparseBenchOptions& options);
StatusOr<SparseMemoryResult> RunSparseMemory(int64_t rows);

//   cairn bench sparse [--points 4096x16,65536x16,65536x64] [--configs 1x1,2x2]
//                      [--seconds 2.0] [--rounds 4] [--memory-rows 10000000] [--json FILE]
void AddSparseBench(CLI::App& bench);
// Runs `cairn bench sparse` if it was parsed; -1 otherwise.
int RunSparseBench(CLI::App& bench);

}  // namespace cairn
