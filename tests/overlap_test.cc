// Communication overlapped with compute (SessionOptions::overlap) against
// real servers on loopback: what each step reads, what the servers hold
// after Flush, and that sync mode ignores it.
//
// The model is elementwise least squares, loss = mean((w * x - y)^2) over
// 4 coordinates, trained with SGD, so each step's gradient is known in
// closed form and the trajectory can be computed beside the servers.
#include <array>
#include <cmath>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/local_cluster.h"
#include "worker/graph.h"
#include "worker/ps_client.h"
#include "worker/session.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;
using Vec = std::array<float, 4>;

constexpr float kLearningRate = 0.2f;
const Vec kX = {1.0f, 2.0f, 0.5f, 1.5f};
const Vec kY = {3.0f, -1.0f, 2.0f, 0.5f};

// w - lr * d/dw mean((w x - y)^2), in the order the ops compute it.
Vec SgdStep(const Vec& w, const Vec& at) {
  Vec out;
  for (int i = 0; i < 4; ++i) {
    const float g = 2.0f * (at[i] * kX[i] - kY[i]) * kX[i] / 4.0f;
    out[i] = w[i] - kLearningRate * g;
  }
  return out;
}

// The value after each of `steps` steps. Fresh: step t's gradient is taken
// at the value after t steps. Stale by one own step (overlap, one worker):
// step t >= 1 reads the value after t - 1 steps, the pull having left before
// step t - 1's push.
std::vector<Vec> Trajectory(int steps, bool stale) {
  std::vector<Vec> after = {Vec{0, 0, 0, 0}};  // after[k]: the value after k steps
  for (int t = 0; t < steps; ++t) {
    const Vec& read = stale && t >= 1 ? after[t - 1] : after[t];
    after.push_back(SgdStep(after[t], read));
  }
  return after;
}

struct Job {
  Job(EventLoop& loop, const std::vector<Endpoint>& servers, Consistency consistency, bool overlap,
      int64_t push_bucket_bytes = int64_t{1} << 20) {
    transport = std::make_unique<AsioTransport>(loop, servers, TestTransportOptions());
    PsClientOptions po;
    po.timeout = milliseconds(20000);
    client = std::make_unique<PsClient>(transport.get(), po);
    x = g.Placeholder("x", DType::kFloat32, {4});
    y = g.Placeholder("y", DType::kFloat32, {4});
    VariableOptions v;
    v.name = "w";
    v.shape = {4};
    w = g.Variable(v);
    VariableOptions s;
    s.name = "global_step";
    s.shape = {};
    s.dtype = DType::kInt64;
    s.trainable = false;
    step = g.Variable(s);
    loss = g.ReduceMean(g.Square(g.Sub(g.Mul(x, w), y)), "loss");
    MinimizeOptions mo;
    mo.global_step = step;
    train = g.Minimize(loss, mo, "train");
    SessionOptions so;
    so.optimizer.kind = "sgd";
    so.optimizer.learning_rate = kLearningRate;
    so.mode.consistency = consistency;
    so.mode.num_workers = 1;
    so.overlap = overlap;
    so.push_bucket_bytes = push_bucket_bytes;
    auto created = Session::Create(&g, client.get(), so);
    EXPECT_TRUE(created.ok()) << created.status();
    session = std::move(created).value();
    Status st = session->Initialize();
    EXPECT_TRUE(st.ok()) << st;
  }

  FeedMap Feeds() const { return {{x, Tensor::FromVector({4}, {kX[0], kX[1], kX[2], kX[3]})},
                                  {y, Tensor::FromVector({4}, {kY[0], kY[1], kY[2], kY[3]})}}; }
  // One training step; returns the value of w it read.
  Vec Step() {
    StatusOr<std::vector<Tensor>> out = session->Run({w, train}, Feeds());
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? Read((*out)[0]) : Vec{};
  }
  static Vec Read(const Tensor& t) { return {t.data<float>()[0], t.data<float>()[1], t.data<float>()[2], t.data<float>()[3]}; }
  // What the servers hold, read past the session.
  Vec Held() {
    StatusOr<std::map<std::string, Tensor>> v = client->Pull({"w"});
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? Read(v->at("w")) : Vec{};
  }
  int64_t HeldStep() {
    StatusOr<std::map<std::string, Tensor>> v = client->Pull({"global_step"});
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? v->at("global_step").data<int64_t>()[0] : -1;
  }

  std::unique_ptr<AsioTransport> transport;
  std::unique_ptr<PsClient> client;
  Graph g;
  Output x, y, w, step, loss, train;
  std::unique_ptr<Session> session;
};

void ExpectNear(const Vec& got, const Vec& want, const std::string& what) {
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], want[i], 1e-5f * (1 + std::fabs(want[i]))) << what << " [" << i << "]";
}

bool Differ(const Vec& a, const Vec& b) {
  for (int i = 0; i < 4; ++i) {
    if (std::fabs(a[i] - b[i]) > 1e-3f) return true;
  }
  return false;
}

constexpr int kSteps = 12;

// One event-loop thread: the server answers one connection's calls in the
// order they left, which is what fixes what each step reads.
TEST(OverlapTraining, AStepReadsEveryUpdateButItsOwnLast) {
  EventLoop loop(1);
  auto cluster = LocalCluster::Start(loop, WithTestAuth(LocalClusterOptions{}));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Job job(loop, (*cluster)->endpoints(), Consistency::kAsync, /*overlap=*/true);
  const std::vector<Vec> stale = Trajectory(kSteps, true), fresh = Trajectory(kSteps, false);
  for (int t = 0; t < kSteps; ++t) {
    const Vec read = job.Step();
    ExpectNear(read, t >= 1 ? stale[t - 1] : stale[0], "step " + std::to_string(t) + " read");
  }
  ASSERT_TRUE(job.session->Flush().ok());
  ExpectNear(job.Held(), stale[kSteps], "held after Flush");
  EXPECT_EQ(job.HeldStep(), kSteps);
  // The control: the two trajectories are far apart, so the check above can tell them apart.
  EXPECT_TRUE(Differ(stale[kSteps], fresh[kSteps]));
}

TEST(OverlapTraining, WithoutOverlapEachStepReadsItsOwnLast) {
  EventLoop loop(1);
  auto cluster = LocalCluster::Start(loop, WithTestAuth(LocalClusterOptions{}));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Job job(loop, (*cluster)->endpoints(), Consistency::kAsync, /*overlap=*/false);
  const std::vector<Vec> fresh = Trajectory(kSteps, false);
  for (int t = 0; t < kSteps; ++t) ExpectNear(job.Step(), fresh[t], "step " + std::to_string(t) + " read");
  ExpectNear(job.Held(), fresh[kSteps], "held");
}

// A Run without a Minimize (an evaluation) waits for the push in flight: it
// sees every step before it, and the steps after it go on stale by one.
TEST(OverlapTraining, ARunWithoutMinimizeSeesEveryStepBeforeIt) {
  EventLoop loop(1);
  auto cluster = LocalCluster::Start(loop, WithTestAuth(LocalClusterOptions{}));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  Job job(loop, (*cluster)->endpoints(), Consistency::kAsync, /*overlap=*/true);
  const std::vector<Vec> stale = Trajectory(kSteps, true);
  for (int t = 0; t < kSteps; ++t) {
    job.Step();
    StatusOr<Tensor> w = job.session->Run(job.w);
    ASSERT_TRUE(w.ok()) << w.status();
    ExpectNear(Job::Read(*w), stale[t + 1], "after step " + std::to_string(t));
  }
}

// push_bucket_bytes 0: w's gradient leaves as soon as backward has it, in
// a push of its own, and the train step after backward: two pushes a step,
// and the same trajectory (both leave after the pull sent ahead).
TEST(OverlapTraining, GradientsLeaveDuringBackwardInBucketsOfTheirOwn) {
  for (int64_t bucket : {int64_t{0}, int64_t{1} << 20}) {
    EventLoop loop(1);
    auto cluster = LocalCluster::Start(loop, WithTestAuth(LocalClusterOptions{}));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    Job job(loop, (*cluster)->endpoints(), Consistency::kAsync, /*overlap=*/true, bucket);
    const std::vector<Vec> stale = Trajectory(kSteps, true);
    for (int t = 0; t < kSteps; ++t) {
      const Vec read = job.Step();
      ExpectNear(read, t >= 1 ? stale[t - 1] : stale[0], "bucket " + std::to_string(bucket) + " step " + std::to_string(t));
    }
    ASSERT_TRUE(job.session->Flush().ok());
    ExpectNear(job.Held(), stale[kSteps], "held");
    EXPECT_EQ(job.HeldStep(), kSteps);
    StatusOr<StatsReply> stats = job.client->Stats(0);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->pushes_applied, static_cast<uint64_t>(bucket == 0 ? 2 * kSteps : kSteps)) << "bucket " << bucket;
  }
}

// Sync mode keeps today's bytes: the option is ignored there.
TEST(OverlapTraining, SyncModeIgnoresOverlapBitForBit) {
  std::vector<Vec> runs;
  for (bool overlap : {false, true}) {
    EventLoop loop(1);
    auto cluster = LocalCluster::Start(loop, WithTestAuth(LocalClusterOptions{}));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    Job job(loop, (*cluster)->endpoints(), Consistency::kSync, overlap);
    for (int t = 0; t < kSteps; ++t) job.Step();
    runs.push_back(job.Held());
    EXPECT_EQ(job.HeldStep(), kSteps);
  }
  EXPECT_EQ(std::memcmp(runs[0].data(), runs[1].data(), sizeof(Vec)), 0);
  ExpectNear(runs[1], Trajectory(kSteps, false)[kSteps], "sync");
}

}  // namespace
}  // namespace cairn
