// Synchronous and asynchronous training across real servers on loopback:
// determinism, the meaning of a sync step, and a missing worker.
#include <thread>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "ps/local_cluster.h"
#include "worker/dataset.h"
#include "worker/model.h"
#include "worker/ps_client.h"
#include "worker/session.h"
#include "tests/toy_classification.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;

LocalClusterOptions Servers(int n) {
  LocalClusterOptions o;
  o.servers = n;
  return o;
}

// One worker: its own transport, client, graph and session.
struct Worker {
  Worker(EventLoop& loop, const std::vector<Endpoint>& servers, int id, int num_workers, const std::string& consistency,
         int64_t sync_timeout_ms = 20000) {
    transport = std::make_unique<AsioTransport>(loop, servers, TestTransportOptions());
    PsClientOptions po;
    po.worker_id = id;
    po.timeout = milliseconds(20000);
    po.placement.split_threshold_bytes = 64;  // split the weights across servers
    client = std::make_unique<PsClient>(transport.get(), po);
    ModelConfig mc;
    mc.kind = "mlp";
    mc.features = 8;
    mc.classes = 3;
    mc.hidden = {16};
    auto m = BuildModel(mc, 0.1, &graph);
    EXPECT_TRUE(m.ok()) << m.status();
    model = *m;
    SessionOptions so;
    so.optimizer.kind = "sgd";
    so.optimizer.learning_rate = 0.1;
    so.mode.consistency = *ParseConsistency(consistency);
    so.mode.num_workers = num_workers;
    so.mode.sync_timeout_ms = sync_timeout_ms;
    auto created = Session::Create(&graph, client.get(), so);
    EXPECT_TRUE(created.ok()) << created.status();
    session = std::move(created).value();
    Status s = session->Initialize();
    EXPECT_TRUE(s.ok()) << s;
  }

  Status Step(const Tensor& x, const Tensor& y) {
    return session->Run({model.loss, model.train_op}, {{model.x, x}, {model.y, y}}).status();
  }

  std::map<std::string, Tensor> Values() {
    std::vector<std::string> names;
    for (const VariableSpec& s : graph.ServerVariables()) names.push_back(s.name);
    auto v = client->Pull(names);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::map<std::string, Tensor>{};
  }

  std::unique_ptr<AsioTransport> transport;
  std::unique_ptr<PsClient> client;
  Graph graph;
  Model model;
  std::unique_ptr<Session> session;
};

// Rows [first, first + n) of `d` as a batch.
void Batch(const Dataset& d, int64_t first, int64_t n, Tensor* x, Tensor* y) {
  *x = Tensor(DType::kFloat32, {n, d.features});
  *y = Tensor(DType::kInt64, {n});
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < d.features; ++j) x->data<float>()[r * d.features + j] = d.x[(first + r) * d.features + j];
    y->data<int64_t>()[r] = d.labels[first + r];
  }
}

// Trains 2 sync workers for `steps` steps on fresh servers; returns the weights.
std::map<std::string, Tensor> TrainSync(int servers, int steps) {
  EventLoop loop(2);
  auto cluster = LocalCluster::Start(loop, WithTestAuth(Servers(servers)));
  EXPECT_TRUE(cluster.ok());
  const Dataset data = testing::ToyClassification(512, 3);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(std::make_unique<Worker>(loop, (*cluster)->endpoints(), w, 2, "sync"));
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int s = 0; s < steps; ++s) {
        Tensor x, y;
        Batch(data, (s * 2 + w) * 16 % 480, 16, &x, &y);
        Status st = workers[w]->Step(x, y);
        ASSERT_TRUE(st.ok()) << st;
      }
    });
  }
  for (auto& t : threads) t.join();
  return workers[0]->Values();
}

TEST(SyncTraining, TwoRunsWithFixedSeedsGiveBitIdenticalWeights) {
  auto first = TrainSync(2, 30);
  auto second = TrainSync(2, 30);
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(first.size(), second.size());
  for (auto& [name, value] : first) EXPECT_TRUE(value.BitEqual(second.at(name))) << name;
  EXPECT_EQ(first.at("global_step").data<int64_t>()[0], 30);
}

TEST(SyncTraining, AStepEqualsOneWorkerGivenBothBatches) {
  const Dataset data = testing::ToyClassification(64, 5);
  Tensor x0, y0, x1, y1, both_x, both_y;
  Batch(data, 0, 16, &x0, &y0);
  Batch(data, 16, 16, &x1, &y1);
  Batch(data, 0, 32, &both_x, &both_y);

  std::map<std::string, Tensor> sync_values, single_values;
  {
    EventLoop loop(2);
    auto cluster = LocalCluster::Start(loop, WithTestAuth(Servers(2)));
    ASSERT_TRUE(cluster.ok());
    Worker w0(loop, (*cluster)->endpoints(), 0, 2, "sync"), w1(loop, (*cluster)->endpoints(), 1, 2, "sync");
    std::thread t([&] { ASSERT_TRUE(w1.Step(x1, y1).ok()); });
    ASSERT_TRUE(w0.Step(x0, y0).ok());
    t.join();
    sync_values = w0.Values();
  }
  {
    EventLoop loop(2);
    auto cluster = LocalCluster::Start(loop, WithTestAuth(Servers(2)));
    ASSERT_TRUE(cluster.ok());
    Worker single(loop, (*cluster)->endpoints(), 0, 1, "sync");
    ASSERT_TRUE(single.Step(both_x, both_y).ok());
    single_values = single.Values();
  }
  for (auto& [name, value] : sync_values) {
    if (value.dtype() != DType::kFloat32) continue;
    const Tensor& other = single_values.at(name);
    for (int64_t i = 0; i < value.num_elements(); ++i) {
      EXPECT_NEAR(value.data<float>()[i], other.data<float>()[i], 1e-6) << name << "[" << i << "]";
    }
  }
  EXPECT_EQ(sync_values.at("global_step").data<int64_t>()[0], 1);
}

TEST(SyncTraining, AMissingWorkerIsNamedInAnErrorInsteadOfAHang) {
  EventLoop loop(2);
  auto cluster = LocalCluster::Start(loop, WithTestAuth(Servers(2)));
  ASSERT_TRUE(cluster.ok());
  Worker w0(loop, (*cluster)->endpoints(), 0, 2, "sync", /*sync_timeout_ms=*/300);
  const Dataset data = testing::ToyClassification(32, 1);
  Tensor x, y;
  Batch(data, 0, 16, &x, &y);
  const auto start = Clock::now();
  Status s = w0.Step(x, y);
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("worker(s) 1 did not push"), std::string::npos) << s;
  EXPECT_LT(Clock::now() - start, milliseconds(5000));
}

TEST(AsyncTraining, GlobalStepCountsEveryWorkersSteps) {
  EventLoop loop(2);
  auto cluster = LocalCluster::Start(loop, WithTestAuth(Servers(2)));
  ASSERT_TRUE(cluster.ok());
  Worker w0(loop, (*cluster)->endpoints(), 0, 2, "async"), w1(loop, (*cluster)->endpoints(), 1, 2, "async");
  const Dataset data = testing::ToyClassification(64, 2);
  Tensor x, y;
  Batch(data, 0, 16, &x, &y);
  for (int s = 0; s < 5; ++s) {
    ASSERT_TRUE(w0.Step(x, y).ok());
    ASSERT_TRUE(w1.Step(x, y).ok());
  }
  EXPECT_EQ(w0.Values().at("global_step").data<int64_t>()[0], 10);
}

TEST(Training, MixingSyncAndAsyncWorkersOnOneServerIsRefused) {
  EventLoop loop(2);
  auto cluster = LocalCluster::Start(loop, WithTestAuth(Servers(1)));
  ASSERT_TRUE(cluster.ok());
  Worker w0(loop, (*cluster)->endpoints(), 0, 2, "sync");
  auto transport = std::make_unique<AsioTransport>(loop, (*cluster)->endpoints(), TestTransportOptions(PeerRole::kWorker, 1));
  PsClient client(transport.get(), PsClientOptions{});
  TrainingMode async;
  Status s = client.Create(w0.graph.ServerVariables(), OptimizerSpec{}, async);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
}

}  // namespace
}  // namespace cairn
