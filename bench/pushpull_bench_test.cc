// The benchmark library on tiny, short runs: it must move bytes, count them
// once, and turn bad input into a Status.
#include "bench/pushpull_bench.h"

#include <gtest/gtest.h>

#include "bench/raw_socket_bench.h"
#include "bench/timed_loop.h"

namespace cairn {
namespace {

TimedLoopOptions Short() { return TimedLoopOptions{.warmup_seconds = 0.02, .seconds = 0.1}; }

TEST(ClusterShape, ParsesServersByWorkers) {
  StatusOr<ClusterShape> s = ClusterShape::Parse("2x3");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (ClusterShape{2, 3}));
  EXPECT_EQ(s->ToString(), "2x3");
}

TEST(ClusterShape, RejectsMalformedText) {
  for (const char* bad : {"", "2", "x2", "2x", "2x2x", "0x1", "1x0", "ax1", "1 x1"}) {
    EXPECT_EQ(ClusterShape::Parse(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(Measurement, PercentilesUseNearestRankOverMergedRuns) {
  Measurement a, b;
  a.latencies_us = {1, 3, 5, 7, 9};
  b.latencies_us = {2, 4, 6, 8, 10};
  a.Merge(b);
  EXPECT_EQ(a.p50_us(), 5);
  EXPECT_EQ(a.p99_us(), 10);
  EXPECT_EQ(Measurement{}.p50_us(), 0);
}

TEST(TimedLoop, StopsEveryThreadOnTheFirstError) {
  std::vector<TimedTask> tasks = {{[] { return Status::OK(); }, 1}, {[] { return Internal("boom"); }, 1}};
  EXPECT_EQ(RunTimedLoop(tasks, Short()).status().code(), StatusCode::kInternal);
}

TEST(RawSocketBench, CountsEveryPairsBytes) {
  RawSocketOptions o;
  o.workers = 2;
  o.message_bytes = {4096, 4096};
  auto bench = RawSocketBench::Start(o);
  ASSERT_TRUE(bench.ok()) << bench.status();
  StatusOr<Measurement> m = (*bench)->Measure(Short());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_GT(m->calls, 0u);
  EXPECT_EQ(m->bytes, m->calls * 4096);
  EXPECT_GT(m->gbps(), 0);
}

TEST(PushPullBench, MeasuresPushAndPullAtDepthBesideOneAtATime) {
  PushPullOptions o;
  o.timing = Short();
  o.rounds = 2;
  o.depth = 4;
  o.ops.push_pull = false;
  StatusOr<PushPullResult> r = RunPushPullCase(ClusterShape{1, 1}, 4096, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->depth, 4);
  for (const Measurement* m : {&r->push, &r->pull, &r->deep_push, &r->deep_pull}) {
    EXPECT_GT(m->calls, 0u);
    EXPECT_EQ(m->bytes, m->calls * 4096);
  }
  EXPECT_EQ(r->deep_over_one.push.size(), 2u);
  EXPECT_EQ(r->deep_over_one.pull.size(), 2u);
  o.depth = 0;
  EXPECT_EQ(RunPushPullCase(ClusterShape{1, 1}, 4096, o).status().code(), StatusCode::kInvalidArgument);
}

TEST(PushPullBench, MeasuresEveryWorkloadOnASplitVariable) {
  PushPullOptions o;
  o.timing = Short();
  o.rounds = 2;
  StatusOr<PushPullResult> r = RunPushPullCase(ClusterShape{2, 2}, 8192, o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const Measurement* m : {&r->raw, &r->push, &r->pull, &r->push_pull}) {
    EXPECT_GT(m->calls, 0u);
    EXPECT_GT(m->p99_us(), 0);
  }
  // A push or pull call counts the whole value once.
  EXPECT_EQ(r->push.bytes, r->push.calls * 8192);
  EXPECT_EQ(r->push_pull.bytes, r->push_pull.calls * 8192);
  // Each raw call carries one server's half.
  EXPECT_EQ(r->raw.bytes, r->raw.calls * 4096);
}

TEST(PushPullBench, ComparesHandshakeAndInsecureServersRoundByRound) {
  PushPullOptions o;
  o.timing = Short();
  o.rounds = 2;
  o.ops = PushPullOps{true, true, false};
  o.auth = AuthMode::kBoth;
  StatusOr<PushPullResult> r = RunPushPullCase(ClusterShape{1, 1}, 4096, o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const Measurement* m : {&r->push, &r->pull, &r->insecure_push, &r->insecure_pull}) EXPECT_GT(m->calls, 0u);
  EXPECT_EQ(r->insecure_push_pull.calls, 0u);
  EXPECT_EQ(r->auth_over_none.push.size(), 2u);
  EXPECT_EQ(r->auth_over_none.pull.size(), 2u);
  EXPECT_TRUE(r->auth_over_none.push_pull.empty());
  EXPECT_GT(MedianRatio(r->auth_over_none.push), 0);
}

TEST(PushPullBench, RunsOnInsecureServersAlone) {
  PushPullOptions o;
  o.timing = Short();
  o.rounds = 1;
  o.ops = PushPullOps{true, false, false};
  o.auth = AuthMode::kNone;
  StatusOr<PushPullResult> r = RunPushPullCase(ClusterShape{1, 1}, 4096, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->push.calls, 0u);
  EXPECT_EQ(r->insecure_push.calls, 0u);
}

TEST(AuthMode, ParsesItsNamesAndTheMedianOfRatios) {
  for (AuthMode m : {AuthMode::kNone, AuthMode::kHandshake, AuthMode::kBoth}) {
    StatusOr<AuthMode> parsed = ParseAuthMode(AuthModeName(m));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_EQ(ParseAuthMode("tls").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MedianRatio({3, 1, 2}), 2);
  EXPECT_EQ(MedianRatio({4, 1, 2, 3}), 2.5);
  EXPECT_EQ(MedianRatio({}), 0);
}

TEST(PushPullBench, RejectsSizesThatAreNotWholeRows) {
  PushPullOptions o;
  o.value_bytes = {1000};
  EXPECT_EQ(ValidatePushPullOptions(o).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RunPushPullBench(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cairn
