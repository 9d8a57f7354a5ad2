// Test helper: one training worker in this process, with its own
// transport, client, graph and session, that steps on batches which are a
// fixed function of their number, so two runs of the same steps are
// bit-identical.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "worker/model.h"
#include "worker/ps_client.h"
#include "worker/saver.h"
#include "worker/session.h"
#include "tests/test_secret.h"

namespace cairn::testing {

using BuildFn = std::function<StatusOr<Model>(Graph*)>;

// The mlp of the snapshot and recovery tests: `features` (20 by default)
// features, 3 classes, one hidden layer of 16, with the worker-state
// variables of `workers` workers. With 20 features and a 128-byte split
// threshold dense_0/W (1280 bytes) and output/W (192) are split by rows
// across the servers.
inline BuildFn Mlp(double learning_rate, int workers, int64_t features = 20, uint64_t seed = 5) {
  return [=](Graph* g) -> StatusOr<Model> {
    ModelConfig c;
    c.kind = "mlp";
    c.features = features;
    c.classes = 3;
    c.hidden = {16};
    c.seed = seed;
    ASSIGN_OR_RETURN(Model m, BuildModel(c, learning_rate, g));
    RETURN_IF_ERROR(AddWorkerStates(workers, g, &m));
    return m;
  };
}

struct WorkerOptions {
  int id = 0;
  BuildFn build;            // required
  SessionOptions session;
  uint64_t split_threshold_bytes = 128;
};

// One training process: its own transport, client, graph and session.
class Worker {
 public:
  Worker(EventLoop& loop, const std::vector<Endpoint>& servers, WorkerOptions options) : options_(options) {
    transport_ = std::make_unique<AsioTransport>(loop, servers, TestTransportOptions());
    PsClientOptions po;
    po.worker_id = options.id;
    po.timeout = std::chrono::milliseconds(20000);
    po.placement.split_threshold_bytes = options.split_threshold_bytes;
    client_ = std::make_unique<PsClient>(transport_.get(), po);
    StatusOr<Model> m = options.build(&graph_);
    EXPECT_TRUE(m.ok()) << m.status();
    if (m.ok()) model_ = *m;
    auto created = Session::Create(&graph_, client_.get(), options.session);
    EXPECT_TRUE(created.ok()) << created.status();
    if (!created.ok()) return;
    session_ = std::move(*created);
    init_ = session_->Initialize();
    EXPECT_TRUE(init_.ok()) << init_;
  }

  bool ready() const { return session_ != nullptr && init_.ok(); }
  // Continues counting this worker's steps from a restored position.
  void ResumeAfter(int64_t steps) { steps_ = steps; }

  // Sets the mlp's normalization statistics to fixed non-trivial values.
  Status SetNormalization() {
    const int64_t f = features();
    std::mt19937 rng(99);
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    Tensor mean(DType::kFloat32, {f}), inv(DType::kFloat32, {f});
    for (int64_t i = 0; i < f; ++i) {
      mean.data<float>()[i] = u(rng) - 1.0f;
      inv.data<float>()[i] = u(rng);
    }
    return session_->Run({model_.set_mean, model_.set_inv_std}, {{model_.new_mean, mean}, {model_.new_inv_std, inv}})
        .status();
  }

  // One train step on batch number `batch` (a fixed function of `batch`), which
  // also records this worker's position when the graph has worker states.
  Status Step(int64_t batch) {
    const int64_t n = 8, f = features();
    std::mt19937 rng(1000 + static_cast<uint32_t>(batch));
    std::normal_distribution<float> normal(0, 1);
    Tensor x(DType::kFloat32, {n, f}), y(DType::kInt64, {n});
    for (int64_t r = 0; r < n; ++r) {
      y.data<int64_t>()[r] = (r + batch) % 3;
      for (int64_t j = 0; j < f; ++j) {
        x.data<float>()[r * f + j] = normal(rng) + (j % 3 == y.data<int64_t>()[r] ? 1.0f : 0.0f);
      }
    }
    FeedMap feeds{{model_.x, x}, {model_.y, y}};
    std::vector<Output> fetches = {model_.loss, model_.train_op};
    ++steps_;
    if (!model_.worker_state.empty()) {
      Tensor state(DType::kInt64, {4});
      int64_t* v = state.data<int64_t>();
      v[0] = steps_;
      v[1] = 0;
      v[2] = steps_;
      v[3] = 42 + options_.id;
      feeds.emplace(model_.new_worker_state, state);
      fetches.push_back(model_.set_worker_state.at(options_.id));
    }
    return session_->Run(fetches, feeds).status();
  }

  // The values of every global variable (or of `names`).
  std::map<std::string, Tensor> Values(std::vector<std::string> names = {}) {
    if (names.empty()) {
      for (const VariableSpec& s : graph_.ServerVariables()) names.push_back(s.name);
    }
    StatusOr<std::map<std::string, Tensor>> v = client_->Pull(names);
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) return {};
    std::map<std::string, Tensor> out;
    for (auto& [name, t] : *v) out[name] = t.Clone();
    return out;
  }

  StatusOr<std::unique_ptr<Saver>> NewSaver(const std::string& model_dir, SaverOptions o = {}) {
    o.model_dir = model_dir;
    return Saver::Create(session_.get(), client_.get(), o);
  }

  int64_t features() const { return graph_.node(model_.x).shape[1]; }

  PsClient& client() { return *client_; }
  Session& session() { return *session_; }
  const Graph& graph() const { return graph_; }
  const Model& model() const { return model_; }

 private:
  const WorkerOptions options_;
  std::unique_ptr<AsioTransport> transport_;
  std::unique_ptr<PsClient> client_;
  Graph graph_;
  Model model_;
  std::unique_ptr<Session> session_;
  Status init_;
  int64_t steps_ = 0;
};

}  // namespace cairn::testing
