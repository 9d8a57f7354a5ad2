// A model and a data set of one's own, built against the installed Cairn
// package (find_package(Cairn), see CMakeLists.txt beside this file): a
// 2-32-2 tanh network that learns to tell the two arms of a spiral apart.
// It registers its model kind ("spiral") and data kind ("spirals") and
// hands the command line to cairn::TrainingMain, so the same commands as
// `cairn train` run it -- the embedded local cluster, mpirun, standalone
// servers and workers -- with everything a job gets: data sharding,
// schedules, snapshots with each worker's data position, exact resume, sync
// recovery.
//
//   custom_model train spiral.yaml --local [--model-dir DIR] [--summary F]
//   mpirun -np 4 custom_model train spiral.yaml --servers 2
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "launch/job_config.h"
#include "launch/training_main.h"
#include "worker/example_source.h"
#include "worker/graph.h"
#include "worker/model.h"

namespace {

using namespace cairn;

// Two interleaved spirals, labelled 0 and 1, `n` points drawn by `seed`.
class Spirals final : public ExampleSource {
 public:
  Spirals(int64_t n, uint64_t seed) : xs_(2 * n), ys_(n) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> noise(0.0f, 0.05f);
    std::uniform_real_distribution<float> along(0.25f, 2.75f);
    for (int64_t i = 0; i < n; ++i) {
      const int label = static_cast<int>(i % 2);
      const float t = along(rng);
      const float angle = t * 2.2f + (label ? 3.14159265f : 0.0f);
      xs_[2 * i] = t * std::cos(angle) + noise(rng);
      xs_[2 * i + 1] = t * std::sin(angle) + noise(rng);
      ys_[i] = label;
    }
  }

  int64_t size() const override { return static_cast<int64_t>(ys_.size()); }

  // Points `indices` into the model's placeholders x [n, 2] and y [n].
  Status Feed(std::span<const int64_t> indices, const Model& model, FeedMap* feeds) const override {
    const int64_t n = static_cast<int64_t>(indices.size());
    Tensor x(DType::kFloat32, {n, 2}), y(DType::kInt64, {n});
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = indices[r];
      if (i < 0 || i >= size()) return InvalidArgument("spiral point " + std::to_string(i) + " out of range");
      x.data<float>()[2 * r] = xs_[2 * i];
      x.data<float>()[2 * r + 1] = xs_[2 * i + 1];
      y.data<int64_t>()[r] = ys_[i];
    }
    (*feeds)[model.x] = std::move(x);
    (*feeds)[model.y] = std::move(y);
    return Status::OK();
  }

  // The spiral model normalizes nothing, so the trainer never asks.
  Status Moments(std::vector<float>*, std::vector<float>*) const override {
    return Unimplemented("spirals have no normalization statistics");
  }

 private:
  std::vector<float> xs_;
  std::vector<int64_t> ys_;
};

// data.kind spirals: data.examples training points and a quarter as many
// test points, drawn by data.seed.
StatusOr<DataSources> SpiralData(const DataConfig& data) {
  if (data.examples < 2) return InvalidArgument("data.examples: spirals need at least 2");
  DataSources sources;
  sources.train = std::make_unique<Spirals>(data.examples, data.seed);
  sources.test = std::make_unique<Spirals>(std::max<int64_t>(2, data.examples / 4), data.seed + 1);
  sources.features = 2;
  return sources;
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

// model.kind spiral: logits = tanh(x W1 + b1) W2 + b2 (model.hidden[0]
// wide, 32 by default) and their cross-entropy, evaluated by accuracy.
// Cairn adds the train op (the job's optimizer, on the servers).
Status BuildSpiral(const ModelConfig& config, Graph* g, Model* m) {
  const int64_t width = config.hidden.empty() ? 32 : config.hidden[0];
  m->x = g->Placeholder("x", DType::kFloat32, {-1, config.features});
  m->y = g->Placeholder("y", DType::kInt64, {-1});
  Output w1 = g->Variable(Weights("spiral/w1", {config.features, width}, config.seed));
  Output b1 = g->Variable(Weights("spiral/b1", {width}, config.seed + 1));
  Output w2 = g->Variable(Weights("spiral/w2", {width, 2}, config.seed + 2));
  Output b2 = g->Variable(Weights("spiral/b2", {2}, config.seed + 3));
  Output hidden = g->Tanh(g->Add(g->MatMul(m->x, w1), b1));
  m->output = g->Add(g->MatMul(hidden, w2), b2, "logits");
  m->loss = g->ReduceMean(g->SparseSoftmaxCrossEntropyWithLogits(m->output, m->y), "loss");
  m->accuracy = g->Accuracy(m->output, m->y, "accuracy");
  m->classifier = true;
  return g->status();
}

}  // namespace

int main(int argc, char** argv) {
  for (const Status& s : {RegisterModel("spiral", BuildSpiral), RegisterData("spirals", SpiralData)}) {
    if (!s.ok()) {
      std::fprintf(stderr, "custom_model: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  return TrainingMain(argc, argv);
}
