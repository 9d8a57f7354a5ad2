// Faults between a worker and real servers: a PsClient over a FaultTransport
// over an AsioTransport, talking to a LocalCluster on 127.0.0.1.
//
//   - a push whose reply is lost is re-sent by the client and applied once;
//   - a push sent twice is answered from the server's push log, applied once;
//   - a reply held past the deadline is DeadlineExceeded naming the server;
//   - a cut connection fails calls with Unavailable, then comes back;
//   - the wrapper's own contract: one callback per call, and none left
//     pending once it is destroyed.
//
// The variable "w" [4, 2] is split by rows over both servers, so every push
// and pull of it is one call to each. Every wait is bounded by a call
// deadline; no test sleeps to order events.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "common/fault_transport.h"
#include "common/messages.h"
#include "ps/local_cluster.h"
#include "worker/ps_client.h"
#include "tests/status_matchers.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

VariableSpec W() {
  VariableSpec s{"w", {4, 2}, DType::kFloat32, {}, true};
  s.init.kind = InitKind::kZeros;
  return s;
}

OptimizerSpec Sgd() {
  OptimizerSpec o;
  o.kind = "sgd";
  o.learning_rate = 1.0;
  return o;
}

// A gradient of w: 1, 2, ..., 8. With SGD at rate 1 and w starting at zero,
// w is -k times this after k pushes of it.
Tensor Gradient() { return Tensor::FromVector({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}); }

PushBatch GradientPush() {
  PushBatch b;
  b.gradients["w"] = Gradient();
  return b;
}

Tensor Scaled(float k) {
  Tensor t = Gradient().Clone();
  t.flat() *= k;
  return t;
}

FaultMatch Pushes(int server) { return FaultMatch{server, FrameType::kPush}; }
FaultMatch Pulls(int server) { return FaultMatch{server, FrameType::kPull}; }

class TransportFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalClusterOptions o;
    o.servers = 2;
    StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(loop_, WithTestAuth(o));
    ASSERT_OK(cluster);
    cluster_ = std::move(*cluster);
    asio_ = std::make_unique<AsioTransport>(loop_, cluster_->endpoints(), TestTransportOptions());
    faults_ = std::make_unique<FaultTransport>(asio_.get());
    client_ = MakeClient(milliseconds(20000));
    ASSERT_OK(client_->Create({W()}, Sgd(), TrainingMode{}));
    ASSERT_EQ(client_->placement().SlicesOf("w")->size(), 2u) << "w should be split over both servers";
  }

  // A client over the faulty transport; every call waits at most `timeout`.
  std::unique_ptr<PsClient> MakeClient(milliseconds timeout) {
    PsClientOptions o;
    o.worker_id = 7;
    o.timeout = timeout;
    o.placement.split_threshold_bytes = 16;  // w (32 bytes) goes to both servers
    return std::make_unique<PsClient>(faults_.get(), o);
  }

  // w as the servers hold it now, pulled through the faulty transport.
  Tensor PullW(PsClient& client) {
    StatusOr<std::map<std::string, Tensor>> pulled = client.Pull({"w"});
    EXPECT_OK(pulled);
    return pulled.ok() ? pulled->at("w") : Tensor();
  }

  ServerStats Stats(int server) { return cluster_->server(server).stats(); }

  // Destroyed in reverse: the client, the wrappers, the servers, the loop.
  EventLoop loop_{2};
  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<AsioTransport> asio_;
  std::unique_ptr<FaultTransport> faults_;  // borrows asio_
  std::unique_ptr<PsClient> client_;
};

TEST_F(TransportFaultTest, APushWhoseReplyIsLostIsSentAgainAndAppliedOnce) {
  faults_->DropReply(Pushes(1));
  ASSERT_OK(client_->Push(GradientPush()));

  EXPECT_EQ(faults_->counts().dropped, 1u);
  EXPECT_EQ(faults_->pending_faults(), 0);
  EXPECT_TRUE(PullW(*client_).BitEqual(Scaled(-1))) << "each half of w takes the gradient once";
  EXPECT_EQ(Stats(0).pushes_applied, 1u);
  EXPECT_EQ(Stats(0).duplicate_pushes, 0u);
  EXPECT_EQ(Stats(1).pushes_applied, 1u);
  EXPECT_EQ(Stats(1).duplicate_pushes, 1u) << "the re-sent copy is answered from the push log";
}

TEST_F(TransportFaultTest, APushSentTwiceIsAnsweredFromThePushLogAndAppliedOnce) {
  faults_->Duplicate(Pushes(0));
  ASSERT_OK(client_->Push(GradientPush()));
  EXPECT_EQ(faults_->counts().duplicated, 1u);
  EXPECT_TRUE(PullW(*client_).BitEqual(Scaled(-1)));
  EXPECT_EQ(Stats(0).pushes_applied, 1u);
  EXPECT_EQ(Stats(0).duplicate_pushes, 1u);
  EXPECT_EQ(Stats(1).duplicate_pushes, 0u);

  // The log holds that key only: the next push is new, and applied.
  ASSERT_OK(client_->Push(GradientPush()));
  EXPECT_TRUE(PullW(*client_).BitEqual(Scaled(-2)));
  EXPECT_EQ(Stats(0).pushes_applied, 2u);
  EXPECT_EQ(Stats(0).duplicate_pushes, 1u);
}

TEST_F(TransportFaultTest, AReplyDelayedPastTheDeadlineIsDeadlineExceededNamingTheServerAndTheNextCallWorks) {
  const milliseconds timeout(500);
  std::unique_ptr<PsClient> impatient = MakeClient(timeout);
  ASSERT_OK(impatient->Create({W()}, Sgd(), TrainingMode{}));
  faults_->DelayReply(Pulls(1), milliseconds(60000));

  const auto start = Clock::now();
  StatusOr<std::map<std::string, Tensor>> pulled = impatient->Pull({"w"});
  const auto waited = Clock::now() - start;
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), StatusCode::kDeadlineExceeded) << pulled.status();
  EXPECT_TRUE(Contains(pulled.status().message(), "server 1")) << pulled.status();
  EXPECT_GE(waited, timeout);
  EXPECT_LT(waited, milliseconds(30000)) << "the deadline, not the delay, ends the call";

  EXPECT_TRUE(PullW(*impatient).BitEqual(Tensor(DType::kFloat32, {4, 2})));
  EXPECT_EQ(faults_->pending_faults(), 0);
}

TEST_F(TransportFaultTest, AReplyDelayedWithinTheDeadlineArrivesLate) {
  faults_->DelayReply(Pulls(0), milliseconds(100));
  const auto start = Clock::now();
  EXPECT_TRUE(PullW(*client_).BitEqual(Tensor(DType::kFloat32, {4, 2})));
  EXPECT_GE(Clock::now() - start, milliseconds(100));
  EXPECT_EQ(faults_->counts().delayed, 1u);
}

TEST_F(TransportFaultTest, ACutConnectionFailsCallsWithUnavailableUntilItComesBack) {
  constexpr int kCut = 3;
  const uint64_t reconnects = faults_->reconnects();
  faults_->Cut(0, kCut);
  for (int i = 0; i < kCut; ++i) {
    StatusOr<std::map<std::string, Tensor>> pulled = client_->Pull({"w"});
    ASSERT_FALSE(pulled.ok()) << "pull " << i << " got through a cut connection";
    EXPECT_EQ(pulled.status().code(), StatusCode::kUnavailable) << pulled.status();
    EXPECT_TRUE(Contains(pulled.status().message(), "server 0")) << pulled.status();
  }
  EXPECT_EQ(faults_->pending_faults(), 0);
  EXPECT_EQ(faults_->counts().cut, static_cast<uint64_t>(kCut));
  EXPECT_EQ(faults_->reconnects(), reconnects + 1) << "a cut that ends counts as a reconnect";

  EXPECT_TRUE(PullW(*client_).BitEqual(Tensor(DType::kFloat32, {4, 2})));
  EXPECT_EQ(Stats(0).pulls_served, 1u) << "the cut calls never reached the server";
}

TEST_F(TransportFaultTest, APushOverABrieflyCutConnectionIsSentAgainUntilItGoesThrough) {
  faults_->Cut(1, 2);
  ASSERT_OK(client_->Push(GradientPush()));
  EXPECT_EQ(faults_->counts().cut, 2u);
  EXPECT_TRUE(PullW(*client_).BitEqual(Scaled(-1)));
  EXPECT_EQ(Stats(1).pushes_applied, 1u);
  EXPECT_EQ(Stats(1).duplicate_pushes, 0u) << "no cut copy reached the server";
}

// Rules count matching calls from when they are set, and a call takes one
// fault: a rule due on a call an earlier rule took fires on the next one.
TEST_F(TransportFaultTest, RulesFireOnTheNthMatchingCallInTheOrderSet) {
  faults_->DropReply(Pulls(0), /*nth=*/2);
  faults_->Duplicate(Pulls(0), /*nth=*/2);
  ASSERT_OK(client_->Pull({"w"}));
  EXPECT_EQ(faults_->pending_faults(), 2);
  EXPECT_EQ(client_->Pull({"w"}).status().code(), StatusCode::kUnavailable);  // the drop
  EXPECT_EQ(faults_->counts().duplicated, 0u);
  ASSERT_OK(client_->Pull({"w"}));  // the duplicate, one call later
  EXPECT_EQ(faults_->counts().duplicated, 1u);
  EXPECT_EQ(faults_->pending_faults(), 0);
  EXPECT_EQ(Stats(0).pulls_served, 4u) << "1 + 1 (reply dropped) + 2 (sent twice)";
  EXPECT_EQ(Stats(1).pulls_served, 3u);
}

// --- The wrapper alone -------------------------------------------------------------

OutFrame StatsFrame() {
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kStats);
  return f;
}

TEST_F(TransportFaultTest, ACallSentTwiceRunsItsCallbackOnce) {
  std::atomic<int> callbacks{0};
  std::promise<Status> result;
  faults_->Duplicate(FaultMatch{0, FrameType::kStats});
  faults_->Call(0, StatsFrame(), DeadlineAfter(milliseconds(20000)), [&](StatusOr<InFrame> reply) {
    if (++callbacks == 1) result.set_value(reply.status());
  });
  std::future<Status> done = result.get_future();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_OK(done.get());
  // Both copies are answered by now (the copy went after the first reply
  // and its reply ran the callback); the destructor stops the timer thread.
  faults_.reset();
  EXPECT_EQ(callbacks.load(), 1);
}

TEST_F(TransportFaultTest, DestroyingTheTransportCancelsTheCallsItHolds) {
  std::atomic<int> callbacks{0};
  StatusCode code = StatusCode::kOk;
  faults_->DelayReply(FaultMatch{1, FrameType::kStats}, milliseconds(60000));
  faults_->Call(1, StatsFrame(), DeadlineAfter(milliseconds(60000)), [&](StatusOr<InFrame> reply) {
    code = reply.status().code();
    ++callbacks;
  });
  faults_.reset();
  EXPECT_EQ(callbacks.load(), 1) << "the held call is answered before the destructor returns";
  EXPECT_EQ(code, StatusCode::kCancelled);
}

}  // namespace
}  // namespace cairn
