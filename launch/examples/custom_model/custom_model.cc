// A model of its own, built against the installed Cairn package
// (find_package(Cairn), see CMakeLists.txt beside this file): a 2-16-2 tanh
// network that learns to tell the two halves of a spiral apart, trained on
// an embedded local cluster of two parameter servers through the same
// worker session and client `cairn train` uses.
//
//   custom_model [--steps N]
//
// Exits 0 when the trained network classifies at least 90% of the points.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/local_cluster.h"
#include "worker/graph.h"
#include "worker/ps_client.h"
#include "worker/session.h"

namespace {

using namespace cairn;

// Two interleaved spirals, labelled 0 and 1.
void Spirals(int n, Tensor* x, Tensor* y) {
  *x = Tensor(DType::kFloat32, {n, 2});
  *y = Tensor(DType::kInt64, {n});
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    const float t = 0.25f + 2.5f * static_cast<float>(i / 2) / static_cast<float>(n / 2);
    const float angle = t * 2.2f + (label ? 3.14159265f : 0.0f);
    x->data<float>()[2 * i] = t * std::cos(angle) + noise(rng);
    x->data<float>()[2 * i + 1] = t * std::sin(angle) + noise(rng);
    y->data<int64_t>()[i] = label;
  }
}

VariableOptions Weights(const std::string& name, Shape shape, uint64_t seed) {
  VariableOptions v;
  v.name = name;
  v.shape = std::move(shape);
  v.init.kind = InitKind::kNormal;
  v.init.stddev = 0.5;
  v.init.seed = seed;
  return v;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "custom_model: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 1500;
  if (argc == 3 && std::string(argv[1]) == "--steps") steps = std::atoi(argv[2]);

  // The graph: logits = tanh(x W1 + b1) W2 + b2, cross-entropy, minimized by
  // Adam on the servers.
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 2});
  Output y = g.Placeholder("y", DType::kInt64, {-1});
  Output w1 = g.Variable(Weights("spiral/w1", {2, 32}, 1));
  Output b1 = g.Variable(Weights("spiral/b1", {32}, 2));
  Output w2 = g.Variable(Weights("spiral/w2", {32, 2}, 3));
  Output b2 = g.Variable(Weights("spiral/b2", {2}, 4));
  Output hidden = g.Tanh(g.Add(g.MatMul(x, w1), b1));
  Output logits = g.Add(g.MatMul(hidden, w2), b2);
  Output loss = g.ReduceMean(g.SparseSoftmaxCrossEntropyWithLogits(logits, y), "loss");
  Output accuracy = g.Accuracy(logits, y, "accuracy");
  Output train = g.Minimize(loss, {}, "train");
  if (!g.status().ok()) return Fail(g.status());

  // Two servers on 127.0.0.1, their secret generated in memory.
  EventLoop loop(1);
  LocalClusterOptions cluster_options;
  cluster_options.servers = 2;
  StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(loop, cluster_options);
  if (!cluster.ok()) return Fail(cluster.status());
  AsioTransport transport(loop, (*cluster)->endpoints(), (*cluster)->ClientOptions());
  PsClientOptions client_options;
  client_options.placement.split_threshold_bytes = 64;  // spread the weights over both servers
  PsClient client(&transport, client_options);
  SessionOptions session_options;
  session_options.optimizer.kind = "adam";
  session_options.optimizer.learning_rate = 0.02;
  StatusOr<std::unique_ptr<Session>> session = Session::Create(&g, &client, session_options);
  if (!session.ok()) return Fail(session.status());
  if (Status s = (*session)->Initialize(); !s.ok()) return Fail(s);

  Tensor xs, ys;
  Spirals(512, &xs, &ys);
  const FeedMap feeds{{x, xs}, {y, ys}};
  for (int step = 1; step <= steps; ++step) {
    StatusOr<std::vector<Tensor>> out = (*session)->Run({loss, train}, feeds);
    if (!out.ok()) return Fail(out.status());
    if (step % 250 == 0 || step == 1) std::printf("step %d  loss %.4f\n", step, (*out)[0].data<float>()[0]);
  }
  StatusOr<Tensor> acc = (*session)->Run(accuracy, feeds);
  if (!acc.ok()) return Fail(acc.status());
  const float a = acc->data<float>()[0];
  std::printf("trained %d steps on %d servers: accuracy %.3f\n", steps, (*cluster)->num_servers(), a);
  return a >= 0.9f ? 0 : 1;
}
