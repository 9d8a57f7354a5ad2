// Bounded staleness (consistency: ssp): SspClocks on its own, then real
// servers and clients on 127.0.0.1.
#include "ps/ssp_clocks.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/server.h"
#include "tests/status_matchers.h"
#include "tests/test_secret.h"
#include "tests/wait.h"
#include "worker/ps_client.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

class SspClocksTest : public ::testing::Test {
 protected:
  std::shared_ptr<SspClocks> Clocks(int workers, int staleness, milliseconds timeout = milliseconds(5000)) {
    return std::make_shared<SspClocks>(loop_.io(), workers, staleness, timeout, 0);
  }
  EventLoop loop_{1};
};

TEST_F(SspClocksTest, AReadWithinTheBoundRunsAtOnce) {
  auto clocks = Clocks(2, 2);
  bool ran = false;
  clocks->Admit(0, 2, [&] { ran = true; }, [](const Status& s) { FAIL() << s; });
  EXPECT_TRUE(ran);  // the slowest (0) is within 2 of clock 2
  EXPECT_EQ(clocks->parked(), 0u);
}

TEST_F(SspClocksTest, AReadPastTheBoundIsParkedUntilTheSlowestCatchesUp) {
  auto clocks = Clocks(3, 1);
  std::atomic<bool> ran{false};
  clocks->Admit(0, 3, [&] { ran = true; }, [](const Status& s) { FAIL() << s; });
  EXPECT_EQ(clocks->parked(), 1u);
  ASSERT_OK(clocks->Advance(0, 3));
  ASSERT_OK(clocks->Advance(1, 2));
  EXPECT_FALSE(ran.load());  // worker 2 is still at 0: needs 2
  ASSERT_OK(clocks->Advance(2, 1));
  EXPECT_FALSE(ran.load());
  ASSERT_OK(clocks->Advance(2, 2));
  EXPECT_TRUE(WaitUntil([&] { return ran.load(); }));
  EXPECT_EQ(clocks->slowest(), 2);
}

TEST_F(SspClocksTest, ClocksNeverGoBackAndAWorkerThatLeftHoldsNoOneBack) {
  auto clocks = Clocks(2, 0);
  ASSERT_OK(clocks->Advance(0, 5));
  ASSERT_OK(clocks->Advance(0, 3));
  EXPECT_EQ(clocks->clocks()[0], 5);
  std::atomic<bool> ran{false};
  clocks->Admit(0, 5, [&] { ran = true; }, [](const Status& s) { FAIL() << s; });
  ASSERT_OK(clocks->Leave(1));
  EXPECT_TRUE(WaitUntil([&] { return ran.load(); }));
  EXPECT_EQ(clocks->slowest(), 5);
}

// After a restore the servers' clocks start at 0; each resumed worker's
// first read, at its own step count, is what brings its clock back.
TEST_F(SspClocksTest, AReadAtAResumedClockRaisesThatWorkersClockAndReleasesTheOthers) {
  auto clocks = Clocks(2, 3);
  std::atomic<bool> first{false}, second{false};
  clocks->Admit(0, 234, [&] { first = true; }, [](const Status& s) { FAIL() << s; });
  EXPECT_EQ(clocks->clocks()[0], 234);
  EXPECT_FALSE(first.load());  // worker 1 is not back yet
  clocks->Admit(1, 231, [&] { second = true; }, [](const Status& s) { FAIL() << s; });
  EXPECT_TRUE(WaitUntil([&] { return first.load() && second.load(); }));
}

TEST_F(SspClocksTest, AParkedReadFailsAfterTheTimeoutNamingTheSlowestWorker) {
  auto clocks = Clocks(3, 1, milliseconds(50));
  ASSERT_OK(clocks->Advance(0, 4));
  ASSERT_OK(clocks->Advance(2, 4));
  std::atomic<bool> failed{false};
  Status why;
  clocks->Admit(
      0, 4, [] { FAIL() << "ran"; },
      [&](const Status& s) {
        why = s;
        failed = true;
      });
  ASSERT_TRUE(WaitUntil([&] { return failed.load(); }));
  EXPECT_EQ(why.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(why.message().find("worker 1 at clock 0"), std::string::npos) << why;
  EXPECT_GT(clocks->parked_seconds(), 0.04);
}

TEST_F(SspClocksTest, UnknownWorkersAndNegativeClocksAreRefused) {
  auto clocks = Clocks(2, 1);
  Status why;
  clocks->Admit(2, 0, [] { FAIL() << "ran"; }, [&](const Status& s) { why = s; });
  EXPECT_EQ(why.code(), StatusCode::kInvalidArgument);
  clocks->Admit(0, -1, [] { FAIL() << "ran"; }, [&](const Status& s) { why = s; });
  EXPECT_EQ(why.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(clocks->Advance(-1, 1).code(), StatusCode::kInvalidArgument);
}

TEST_F(SspClocksTest, ResetReleasesWhatTheRestoredClocksAdmitAndCancelFailsTheRest) {
  auto clocks = Clocks(2, 0);
  std::atomic<int> ran{0}, failed{0};
  clocks->Admit(0, 3, [&] { ++ran; }, [&](const Status&) { ++failed; });
  clocks->Admit(1, 9, [&] { ++ran; }, [&](const Status&) { ++failed; });
  clocks->Reset({3, 4});
  EXPECT_TRUE(WaitUntil([&] { return ran.load() == 1; }));
  clocks->Cancel(Cancelled("server stopping"));
  EXPECT_EQ(failed.load(), 1);
  EXPECT_EQ(clocks->parked(), 2u);
}

// Real servers and workers: each worker counts its own pushes in a variable
// of its own (SGD, rate 1, gradient -1: +1 per push); every read checks
// that it saw every other worker's first c - s pushes.
class SspTrainingTest : public ::testing::TestWithParam<int> {
 protected:
  static constexpr int kWorkers = 3;

  void StartServers(int n, milliseconds wait = milliseconds(20000)) {
    for (int i = 0; i < n; ++i) {
      ServerOptions o;
      o.index = i;
      auto s = Server::Start(server_loop_, WithTestAuth(o));
      ASSERT_TRUE(s.ok()) << s.status();
      endpoints_.push_back((*s)->endpoint());
      servers_.push_back(std::move(*s));
    }
    mode_ = TrainingMode{Consistency::kSsp, kWorkers, wait.count(), MissingWorkers::kFail, GetParam()};
    for (int w = 0; w < kWorkers; ++w) {
      transports_.push_back(std::make_unique<AsioTransport>(
          worker_loop_, endpoints_, TestTransportOptions(w == 0 ? PeerRole::kChief : PeerRole::kWorker, w)));
      PsClientOptions o;
      o.worker_id = w;
      o.timeout = milliseconds(30000);
      o.placement.split_threshold_bytes = 0;
      clients_.push_back(std::make_unique<PsClient>(transports_.back().get(), o));
    }
    std::vector<VariableSpec> specs;
    for (int w = 0; w < kWorkers; ++w) {
      VariableSpec s{"count" + std::to_string(w), {1}, DType::kFloat32, {}, true};
      s.init.kind = InitKind::kZeros;
      specs.push_back(s);
    }
    OptimizerSpec sgd;
    sgd.learning_rate = 1.0;
    for (auto& c : clients_) ASSERT_OK(c->Create(specs, sgd, mode_));
  }

  // `steps` steps of worker w; the first bound violation, if any.
  Status Train(int w, int steps) {
    PsClient& c = *clients_[w];
    std::vector<std::string> names;
    for (int v = 0; v < kWorkers; ++v) names.push_back("count" + std::to_string(v));
    for (int step = 0; step < steps; ++step) {
      const int64_t clock = c.next_step();
      ASSIGN_OR_RETURN(auto values, c.Pull(names));
      for (int v = 0; v < kWorkers; ++v) {
        const float seen = values["count" + std::to_string(v)].data<float>()[0];
        const int64_t bound = std::min<int64_t>(clock - GetParam(), finished_[v].load());
        if (seen < bound) {
          return Internal("worker " + std::to_string(w) + " at clock " + std::to_string(clock) + " saw " +
                          std::to_string(seen) + " pushes of worker " + std::to_string(v) + ", fewer than " +
                          std::to_string(bound));
        }
        if (v == w && seen != clock) return Internal("worker " + std::to_string(w) + " lost one of its own pushes");
      }
      PushBatch batch;
      batch.train_step = true;
      batch.gradients["count" + std::to_string(w)] = Tensor::FromVector({1}, {-1.0f});
      RETURN_IF_ERROR(c.Push(batch));
    }
    finished_[w] = steps;
    return c.Leave();
  }

  uint64_t Parked() const {
    uint64_t n = 0;
    for (const auto& s : servers_) n += s->stats().ssp_reads_parked;
    return n;
  }

  EventLoop server_loop_{2};
  EventLoop worker_loop_{1};
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<Endpoint> endpoints_;
  std::vector<std::unique_ptr<AsioTransport>> transports_;
  std::vector<std::unique_ptr<PsClient>> clients_;
  TrainingMode mode_;
  std::atomic<int64_t> finished_[kWorkers] = {INT64_MAX, INT64_MAX, INT64_MAX};
};

TEST_P(SspTrainingTest, NoReadIsStalerThanTheBoundAndAStragglerReleasesTheParkedReads) {
  StartServers(2);
  constexpr int kSteps = 12;
  Status results[kWorkers];
  // Workers 1 and 2 run ahead until their reads at clock s + 1 are parked
  // (worker 0 has not begun); only then does worker 0 start.
  std::thread fast1([&] { results[1] = Train(1, kSteps); });
  std::thread fast2([&] { results[2] = Train(2, kSteps); });
  EXPECT_TRUE(WaitUntil([&] { return Parked() >= 2 * servers_.size(); }, milliseconds(10000)));
  EXPECT_EQ(clients_[1]->next_step(), GetParam() + 1);
  EXPECT_EQ(clients_[2]->next_step(), GetParam() + 1);
  results[0] = Train(0, kSteps);
  fast1.join();
  fast2.join();
  for (int w = 0; w < kWorkers; ++w) EXPECT_TRUE(results[w].ok()) << "worker " << w << ": " << results[w];
}

TEST_P(SspTrainingTest, AWorkerWithMoreStepsFinishesAfterTheOthersLeave) {
  StartServers(1);
  Status results[kWorkers];
  std::thread a([&] { results[0] = Train(0, 3); });
  std::thread b([&] { results[1] = Train(1, 3); });
  results[2] = Train(2, 3 + 3 * (GetParam() + 2));
  a.join();
  b.join();
  for (int w = 0; w < kWorkers; ++w) EXPECT_TRUE(results[w].ok()) << "worker " << w << ": " << results[w];
}

INSTANTIATE_TEST_SUITE_P(Staleness, SspTrainingTest, ::testing::Values(0, 2),
                         [](const auto& info) { return "s" + std::to_string(info.param); });

TEST(SspTraining, AReadWaitingForAWorkerThatNeverComesFailsNamingIt) {
  EventLoop server_loop(1), worker_loop(1);
  ServerOptions so;
  auto server = Server::Start(server_loop, WithTestAuth(so));
  ASSERT_TRUE(server.ok()) << server.status();
  AsioTransport transport(worker_loop, {(*server)->endpoint()}, TestTransportOptions());
  PsClientOptions o;
  o.worker_id = 0;
  PsClient client(&transport, o);
  VariableSpec v{"v", {1}, DType::kFloat32, {}, true};
  ASSERT_OK(client.Create({v}, OptimizerSpec{}, TrainingMode{Consistency::kSsp, 2, 200, MissingWorkers::kFail, 0}));
  PushBatch batch;
  batch.train_step = true;
  batch.gradients["v"] = Tensor::FromVector({1}, {1.0f});
  ASSERT_OK(client.Push(batch));
  auto pulled = client.Pull({"v"});  // clock 1, but worker 1 is at 0
  EXPECT_EQ(pulled.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(pulled.status().message().find("worker 1 at clock 0"), std::string::npos) << pulled.status();
}

}  // namespace
}  // namespace cairn
