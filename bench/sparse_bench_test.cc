// The sparse benchmark on tiny, short runs through real servers: every
// round yields a ratio to the raw baseline, and bad points are refused.
#include "bench/sparse_bench.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(SparseBench, EachRoundOfPullAndPushGivesARatioToRaw) {
  SparseBenchOptions o;
  o.points = {{512, 4}, {20000, 8}};  // the second is pulled in several reply pieces and pushed in parallel
  o.configs = {{1, 1}, {2, 1}};
  o.timing = TimedLoopOptions{.warmup_seconds = 0.02, .seconds = 0.3};
  o.rounds = 3;
  StatusOr<std::vector<SparseResult>> results = RunSparsePullPush(o);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 4u);
  for (const SparseResult& r : *results) {
    SCOPED_TRACE(r.config.ToString() + ", " + std::to_string(r.point.ids) + " x " + std::to_string(r.point.dim));
    EXPECT_GT(r.pull.calls, 0u);
    EXPECT_GT(r.push.calls, 0u);
    EXPECT_EQ(r.pull.bytes, r.pull.calls * static_cast<uint64_t>(r.point.ids) * (8 + 4 * r.point.dim));
    ASSERT_EQ(r.pull_ratios.size(), 3u);
    ASSERT_EQ(r.push_ratios.size(), 3u);
    EXPECT_GT(r.PullRatio(), 0);
    EXPECT_GT(r.PushRatio(), 0);
  }
}

TEST(SparseBench, PointsOutOfRangeAreRefused) {
  SparseBenchOptions o;
  o.configs = {{1, 1}};
  o.points = {{0, 16}};
  EXPECT_EQ(RunSparsePullPush(o).status().code(), StatusCode::kInvalidArgument);
  o.points = {{16, 0}};
  EXPECT_EQ(RunSparsePullPush(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(SparseBench, TheMemoryOfATableIsItsPayloadAndLittleMore) {
  StatusOr<SparseMemoryResult> m = RunSparseMemory(100000);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->payload_bytes, 100000u * (8 + 4 * 16 + 4 * 16));  // id, values, Adagrad's accumulator
  EXPECT_GE(m->allocated_bytes, m->payload_bytes);
}

}  // namespace
}  // namespace cairn
