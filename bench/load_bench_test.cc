// The load bench on a short run: legitimate calls must all succeed while
// hostile peers of every kind are connected, and the server must close the
// ones its deadlines are for.
#include "bench/load_bench.h"

#include <gtest/gtest.h>

#include "bench/connect_bench.h"
#include "bench/load_report.h"

namespace cairn {
namespace {

LoadBenchOptions Short() {
  LoadBenchOptions o;
  o.seconds = 2;
  o.window_seconds = 1;  // quiet, hostile
  o.warmup_seconds = 0.2;
  o.clients = 8;
  o.warmup_pushes = 10;
  o.hostile = 20;
  o.value_bytes = 4096;
  o.interval = std::chrono::milliseconds(5);
  o.limits.handshake_timeout = std::chrono::milliseconds(200);
  o.limits.read_timeout = std::chrono::milliseconds(300);
  o.trickle_interval = std::chrono::milliseconds(50);
  return o;
}

TEST(LoadBench, ServesEveryLegitimateCallWhileHostilePeersAttack) {
  StatusOr<LoadResult> r = RunLoadBench(Short());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->errors, 0u) << (r->error_samples.empty() ? "" : r->error_samples[0]);
  ASSERT_EQ(r->windows.size(), 2u);
  EXPECT_FALSE(r->windows[0].hostile);
  EXPECT_TRUE(r->windows[1].hostile);
  EXPECT_GT(r->quiet_push.count(), 0u);
  EXPECT_GT(r->hostile_pull.count(), 0u);
  // Wrong secrets fail their handshakes; idle and trickling peers hit the
  // handshake deadline; a trickled frame hits the frame deadline.
  EXPECT_GT(r->windows[1].server.handshakes_failed, 0u);
  EXPECT_GT(r->server.connections_timed_out, 0u);
  ASSERT_EQ(r->hostile.size(), static_cast<size_t>(kHostileKinds));
  for (HostileKind k : {HostileKind::kIdle, HostileKind::kTrickleHandshake, HostileKind::kWrongSecret,
                        HostileKind::kTrickleFrame}) {
    EXPECT_GT(r->hostile[static_cast<int>(k)].closed_by_server, 0u) << HostileKindName(k);
  }
  const HostileKindStats& claim = r->hostile[static_cast<int>(HostileKind::kClaimHuge)];
  EXPECT_GT(claim.authenticated, 0u);
  EXPECT_GT(claim.closed_at_end, 0u);  // its deadline is far past the window
  for (const HostileKindStats& h : r->hostile) EXPECT_EQ(h.unexpected, 0u);
  EXPECT_FALSE(r->samples.empty());
  EXPECT_NE(FormatLoadReport(Short(), *r).find("0 errors"), std::string::npos);
}

TEST(LatencyHistogram, KnowsPercentilesToWithinTwoPercent) {
  LatencyHistogram a, b;
  for (int us = 1; us <= 500; ++us) a.Add(us);
  for (int us = 501; us <= 1000; ++us) b.Add(us);
  a.Merge(b);
  EXPECT_EQ(a.count(), 1000u);
  EXPECT_EQ(a.max_us(), 1000);
  EXPECT_DOUBLE_EQ(a.mean_us(), 500.5);
  EXPECT_NEAR(a.p50_us(), 500, 10);
  EXPECT_NEAR(a.p99_us(), 990, 20);
  EXPECT_EQ(a.Percentile(1.0), 1000);
  EXPECT_EQ(LatencyHistogram{}.p99_us(), 0);
}

TEST(LoadBench, RejectsAValueThatIsNotWholeRows) {
  LoadBenchOptions o = Short();
  o.value_bytes = 1000;
  EXPECT_EQ(RunLoadBench(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(ConnectBench, TimesConnectsWithAndWithoutTheHandshake) {
  ConnectBenchOptions o;
  o.connects = 40;
  o.block = 10;
  o.warmup = 5;
  StatusOr<std::vector<ConnectCost>> costs = RunConnectBench(o);
  ASSERT_TRUE(costs.ok()) << costs.status();
  ASSERT_EQ(costs->size(), 2u);
  EXPECT_TRUE((*costs)[0].authenticated);
  EXPECT_FALSE((*costs)[1].authenticated);
  for (const ConnectCost& c : *costs) {
    EXPECT_EQ(c.m.calls, 40u);
    EXPECT_EQ(c.m.latencies_us.size(), 40u);
    EXPECT_GT(c.per_second(), 0);
  }
}

}  // namespace
}  // namespace cairn
