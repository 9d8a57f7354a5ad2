// Models described as layer lists (worker/layers.h): the presets' graphs,
// errors that name the layer and field, batch normalization's moving
// statistics and evaluation view, dropout's masks, and a layer model with
// batch normalization trained by the Trainer on Fashion-MNIST.
#include "worker/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ps/in_process_store.h"
#include "tests/in_process_rig.h"
#include "worker/dataset.h"
#include "worker/model.h"
#include "worker/session.h"
#include "worker/trainer.h"

namespace cairn {
namespace {

using testing::Rig;

LayerSpec L(const std::string& type, int64_t units = 0, const std::string& name = "") {
  LayerSpec l;
  l.type = type;
  l.units = units;
  l.name = name;
  return l;
}

ModelConfig Layers(std::vector<LayerSpec> layers, int64_t features = 4, int64_t classes = 3) {
  ModelConfig c;
  c.kind = "layers";
  c.layers = std::move(layers);
  c.features = features;
  c.classes = classes;
  return c;
}

std::vector<std::string> VariableNames(const Graph& g) {
  std::vector<std::string> names;
  for (const VariableSpec& v : g.ServerVariables()) names.push_back(v.name);
  return names;
}

TEST(Layers, TheMlpPresetKeepsItsVariablesAndNodes) {
  ModelConfig c;
  c.kind = "mlp";
  c.features = 6;
  c.hidden = {5, 4};
  Graph g;
  StatusOr<Model> m = BuildModel(c, 0.1, &g);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(VariableNames(g),
            (std::vector<std::string>{"learning_rate", "cairn/chief_ready", "global_step", "normalize/mean",
                                      "normalize/inv_std", "dense_0/W", "dense_0/b", "dense_1/W", "dense_1/b",
                                      "output/W", "output/b"}));
  for (const char* node : {"normalized", "dense_0/z", "dense_0/out", "output/z", "loss", "accuracy"}) {
    EXPECT_TRUE(g.Find(node).ok()) << node;
  }
  EXPECT_TRUE(m->classifier);
  EXPECT_TRUE(m->mean.valid() && m->set_inv_std.valid());
  // Nothing differs at evaluation: one view serves both.
  EXPECT_FALSE(m->eval_loss.valid());
  EXPECT_TRUE(m->update_ops.empty());
  EXPECT_FALSE(m->step_seed.valid());
}

// A registered model with dropout but no evaluation view is refused: its
// evaluation would need a dropout seed.
TEST(Layers, ARegisteredModelWithDropoutNeedsAnEvaluationView) {
  ASSERT_TRUE(RegisterModel("layers_test_dropout_only", [](const ModelConfig&, Graph* g, Model* m) {
                m->x = g->Placeholder("x", DType::kFloat32, {-1, 2});
                m->y = g->Placeholder("y", DType::kInt64, {-1});
                m->step_seed = g->Placeholder("seed", DType::kInt64, {});
                VariableOptions w;
                w.name = "w";
                w.shape = {2, 2};
                m->output = g->Dropout(g->MatMul(m->x, g->Variable(w)), m->step_seed, 0.5f, 1);
                m->loss = g->ReduceMean(g->SparseSoftmaxCrossEntropyWithLogits(m->output, m->y));
                return g->status();
              }).ok());
  ModelConfig c;
  c.kind = "layers_test_dropout_only";
  Graph g;
  StatusOr<Model> m = BuildModel(c, 0.1, &g);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("needs an evaluation view"), std::string::npos) << m.status();
  EXPECT_EQ(RegisterModel("mlp", [](const ModelConfig&, Graph*, Model*) { return Status::OK(); }).code(),
            StatusCode::kAlreadyExists);
}

TEST(Layers, TheClickPresetsBuildTheirTables) {
  ModelConfig c;
  c.kind = "click_wide_deep";
  c.features = 13;
  c.embedding_dim = 4;
  c.hidden = {8};
  Graph g;
  StatusOr<Model> m = BuildModel(c, 0.1, &g);
  ASSERT_TRUE(m.ok()) << m.status();
  std::vector<std::string> tables;
  for (const SparseTableSpec& t : g.SparseTables()) tables.push_back(t.name);
  EXPECT_EQ(tables, (std::vector<std::string>{"click/wide", "click/embedding"}));
  // The names snapshots of these models have always had.
  const std::vector<std::string> vars = VariableNames(g);
  for (const char* name : {"click/wide/dense_w", "click/wide/b", "normalize/mean", "click/deep/dense_0/W",
                           "click/deep/output/b"}) {
    EXPECT_NE(std::find(vars.begin(), vars.end(), name), vars.end()) << name;
  }
  EXPECT_TRUE(m->click);
  EXPECT_TRUE(m->ids.valid());
  EXPECT_EQ(g.node(m->ids).shape, (Shape{-1, 26}));
  EXPECT_EQ(g.node(m->output).shape.size(), 1u);  // the logits, [-1]
}

// Each bad list fails with its layer's place, type and name, and the field.
TEST(Layers, AnErrorNamesTheLayerAndTheField) {
  LayerSpec bad_units = L("dense", 0);
  LayerSpec bad_momentum = L("batch_norm");
  bad_momentum.momentum = 1.0;
  LayerSpec bad_rate = L("dropout");
  bad_rate.rate = 1.0;
  LayerSpec unknown_input = L("dense", 3);
  unknown_input.inputs = {"nope"};
  LayerSpec ids_input = L("embedding", 0, "emb");
  ids_input.inputs = {"ids"};
  LayerSpec bad_activation = L("dense", 3);
  bad_activation.activation = "gelu";
  const std::vector<std::pair<std::vector<LayerSpec>, std::string>> cases = {
      {{L("conv"), L("softmax")}, "model.layers[0] (conv 'conv_0').type: unknown layer type 'conv'"},
      {{bad_units, L("softmax")}, "model.layers[0] (dense 'output').units: must be in [1, 100000], got 0"},
      {{L("dense", 3)}, "model.layers[0] (dense): the last layer must be a head"},
      {{L("dense", 5), L("softmax")}, "model.layers[1] (softmax 'softmax_0'): its input has width 5, a softmax head needs 3"},
      {{unknown_input, L("softmax")}, "model.layers[0] (dense 'output').inputs: no input or earlier layer named 'nope'"},
      {{ids_input, L("dense", 3), L("softmax")}, "(the data has no categorical ids)"},
      {{bad_momentum, L("dense", 3), L("softmax")}, "model.layers[0] (batch_norm 'batch_norm_0').momentum: must be in [0, 1), got 1"},
      {{bad_rate, L("dense", 3), L("softmax")}, "model.layers[0] (dropout 'dropout_0').rate: must be in [0, 1)"},
      {{bad_activation, L("softmax")}, ".activation: unknown activation 'gelu'"},
      {{L("dense", 3, "a"), L("dense", 3, "a"), L("softmax")}, "model.layers[1] (dense 'a'): another layer is named 'a'"},
      {{L("dense", 3), L("softmax"), L("softmax")}, "model.layers[1] (softmax 'softmax_0'): a head (softmax, "
                                                    "logistic, regression) must be the last layer"},
      {{L("dense", 3, "train"), L("dense", 3), L("softmax")}, "model.layers[0] (dense 'train'): name 'train' is taken"},
      {{L("dense", 3, "eval/x"), L("dense", 3), L("softmax")}, "name 'eval/x' is taken"},
  };
  for (const auto& [layers, want] : cases) {
    Graph g;
    StatusOr<Model> m = BuildModel(Layers(layers), 0.1, &g);
    ASSERT_FALSE(m.ok()) << "accepted: " << want;
    EXPECT_NE(m.status().message().find(want), std::string::npos) << m.status() << "\nwanted: " << want;
  }
}

// A layer model trained in-process, by SGD (or `kind`) at 0.01.
OptimizerSpec Optimizer(const std::string& kind = "sgd") {
  OptimizerSpec o;
  o.kind = kind;
  o.learning_rate = 0.01;
  return o;
}

// A batch of n examples of f features, far from zero mean and unit variance.
FeedMap Batch(const Model& m, int64_t n, int64_t f, uint64_t seed, Tensor* x_out = nullptr) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(3.0f, 2.0f);
  std::vector<float> x(n * f);
  for (float& v : x) v = normal(rng);
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = i % 3;
  Tensor labels(DType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) labels.data<int64_t>()[i] = y[i];
  Tensor xs = Tensor::FromVector({n, f}, x);
  if (x_out) *x_out = xs;
  return {{m.x, xs}, {m.y, labels}};
}

// An embedding of some slots of the ids: a table per slot, pooled or not,
// trained in-process on a tiny click batch; only the rows of its slots'
// ids are created.
TEST(Layers, AnEmbeddingReadsOnlyItsSlots) {
  LayerSpec first = L("embedding", 0, "emb_slot0");
  first.inputs = {"ids"};
  first.slots = {0};
  first.dim = 4;
  LayerSpec pooled = L("embedding", 0, "emb_slots12");
  pooled.inputs = {"ids"};
  pooled.slots = {1, 2};
  pooled.combiner = "mean";
  pooled.dim = 3;
  LayerSpec join = L("concat", 0, "join");
  join.inputs = {"emb_slot0", "emb_slots12", "features"};
  ModelConfig c = Layers({first, pooled, join, L("dense", 1), L("logistic")}, /*features=*/2);
  c.slots = 3;
  Rig rig(c, Optimizer(), 0.01);
  ASSERT_TRUE(rig.session);
  Tensor ids(DType::kInt64, {2, 3});
  const int64_t id_values[] = {10, 20, 30, 11, 21, -1};
  std::memcpy(ids.data<int64_t>(), id_values, sizeof(id_values));
  const FeedMap feeds = {{rig.model.x, Tensor::FromVector({2, 2}, {1, 2, 3, 4})},
                         {rig.model.ids, ids},
                         {rig.model.y, Tensor::FromVector({2}, {1, 0})}};
  const auto rows = [&](const std::string& table, std::vector<int64_t> which) {
    Tensor t(DType::kInt64, {static_cast<int64_t>(which.size())});
    std::memcpy(t.data<int64_t>(), which.data(), which.size() * sizeof(int64_t));
    StatusOr<std::map<std::string, Tensor>> r = rig.store.SparsePull({{table, t}});
    EXPECT_TRUE(r.ok()) << r.status();
    const Tensor& v = r->at(table);
    return std::vector<float>(v.data<float>(), v.data<float>() + v.num_elements());
  };
  const std::vector<float> slot0_before = rows("emb_slot0", {10, 11, 20}), pooled_before = rows("emb_slots12", {20, 30, 10});
  ASSERT_TRUE(rig.session->Run(rig.model.train_op, feeds).ok());
  const std::vector<float> slot0_after = rows("emb_slot0", {10, 11, 20}), pooled_after = rows("emb_slots12", {20, 30, 10});
  // Slot 0's ids moved in its table; slot 1's id 20 did not (it is not read there).
  for (int k = 0; k < 4; ++k) {
    EXPECT_NE(slot0_after[k], slot0_before[k]) << "id 10";
    EXPECT_NE(slot0_after[4 + k], slot0_before[4 + k]) << "id 11";
    EXPECT_EQ(slot0_after[8 + k], slot0_before[8 + k]) << "id 20 is slot 1's";
  }
  // The pooled table moved for slots 1 and 2's ids, not for slot 0's id 10.
  for (int k = 0; k < 3; ++k) {
    EXPECT_NE(pooled_after[k], pooled_before[k]) << "id 20";
    EXPECT_NE(pooled_after[3 + k], pooled_before[3 + k]) << "id 30";
    EXPECT_EQ(pooled_after[6 + k], pooled_before[6 + k]) << "id 10 is slot 0's";
  }
  EXPECT_EQ(rig.graph.node(*rig.graph.Find("join")).shape, (Shape{-1, 4 + 3 + 2}));
  Graph bad;
  LayerSpec wrong = first;
  wrong.slots = {3};
  ModelConfig bc = Layers({wrong, L("dense", 1), L("logistic")}, 2);
  bc.slots = 3;
  StatusOr<Model> m = BuildModel(bc, 0.1, &bad);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model.layers[0] (embedding 'emb_slot0').slots: slot 3 outside [0, 3)"),
            std::string::npos)
      << m.status();
}

TEST(Layers, BatchNormMovesItsMovingStatisticsTowardTheBatchs) {
  for (int workers : {1, 2}) {
    LayerSpec bn = L("batch_norm", 0, "bn");
    bn.momentum = 0.75;
    ModelConfig c = Layers({bn, L("dense", 3), L("softmax")});
    c.workers = workers;
    Rig rig(c, Optimizer(), 0.01);
    ASSERT_TRUE(rig.session);
    ASSERT_EQ(rig.model.update_ops.size(), 2u);
    Tensor x;
    const FeedMap feeds = Batch(rig.model, 16, 4, 7, &x);
    std::vector<Output> fetches = {rig.model.train_op};
    fetches.insert(fetches.end(), rig.model.update_ops.begin(), rig.model.update_ops.end());
    ASSERT_TRUE(rig.session->Run(fetches, feeds).ok());
    // moving += (1 - momentum) / workers * (batch - moving), from 0 and 1.
    const double k = 0.25 / workers;
    const std::vector<float> mean = rig.Pull("bn/moving_mean"), var = rig.Pull("bn/moving_variance");
    ASSERT_EQ(mean.size(), 4u);
    for (int j = 0; j < 4; ++j) {
      double m = 0, v = 0;
      for (int i = 0; i < 16; ++i) m += x.data<float>()[i * 4 + j] / 16.0;
      for (int i = 0; i < 16; ++i) v += std::pow(x.data<float>()[i * 4 + j] - m, 2) / 16.0;
      EXPECT_NEAR(mean[j], k * m, 1e-5) << "feature " << j << ", " << workers << " worker(s)";
      EXPECT_NEAR(var[j], 1 + k * (v - 1), 1e-4) << "feature " << j << ", " << workers << " worker(s)";
    }
    // Non-trainable: the optimizer leaves them to the update ops, and a Run
    // without them (an evaluation) does not move them.
    ASSERT_TRUE(rig.session->Run(rig.model.eval_loss, feeds).ok());
    EXPECT_EQ(rig.Pull("bn/moving_mean"), mean);
  }
}

// With momentum 0 the moving statistics are the last batch's, so evaluating
// that batch gives what training computed on it.
TEST(Layers, BatchNormEvaluatesByItsMovingStatistics) {
  LayerSpec bn = L("batch_norm", 0, "bn");
  bn.momentum = 0;
  Rig rig(Layers({bn, L("dense", 3), L("softmax")}), Optimizer(), 0.01);
  ASSERT_TRUE(rig.session);
  const FeedMap feeds = Batch(rig.model, 32, 4, 11);
  StatusOr<std::vector<Tensor>> before = rig.session->Run({rig.model.output, rig.model.eval_output}, feeds);
  ASSERT_TRUE(before.ok()) << before.status();
  // Before any step the moving statistics are 0 and 1: evaluation differs.
  const auto max_diff = [](const Tensor& a, const Tensor& b) {
    float d = 0;
    for (int64_t i = 0; i < a.num_elements(); ++i) d = std::max(d, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
    return d;
  };
  EXPECT_GT(max_diff((*before)[0], (*before)[1]), 0.1f);
  ASSERT_TRUE(rig.session->Run(rig.model.update_ops, feeds).ok());
  StatusOr<std::vector<Tensor>> after = rig.session->Run({rig.model.output, rig.model.eval_output}, feeds);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_LT(max_diff((*after)[0], (*after)[1]), 1e-3f);
}

TEST(Layers, DropoutDropsWhileTrainingOnlyAndByItsSeed) {
  LayerSpec drop = L("dropout", 0, "drop");
  drop.rate = 0.5;
  Rig rig(Layers({L("dense", 64, "wide"), drop, L("dense", 3), L("softmax")}, 4, 3), Optimizer(), 0.01);
  ASSERT_TRUE(rig.session);
  ASSERT_TRUE(rig.model.step_seed.valid());
  StatusOr<Output> dropped = rig.graph.Find("drop");
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  FeedMap feeds = Batch(rig.model, 64, 4, 3);
  const auto run = [&](int64_t seed) {
    FeedMap f = feeds;
    Tensor s(DType::kInt64, {});
    s.data<int64_t>()[0] = seed;
    f.emplace(rig.model.step_seed, s);
    StatusOr<Tensor> t = rig.session->Run(*dropped, f);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::vector<float>(t->data<float>(), t->data<float>() + t->num_elements()) : std::vector<float>();
  };
  const std::vector<float> a = run(1), again = run(1), b = run(2);
  ASSERT_EQ(a.size(), 64u * 64u);
  EXPECT_EQ(a, again);
  EXPECT_NE(a, b);
  int zeros = 0;
  for (float v : a) zeros += v == 0.0f;
  EXPECT_NEAR(zeros / 4096.0, 0.5, 0.05);
  // Evaluation reads no seed and drops nothing.
  StatusOr<Tensor> eval = rig.session->Run(rig.model.eval_output, feeds);
  EXPECT_TRUE(eval.ok()) << eval.status();
}

// The example job's model, smaller: trained by the Trainer, in-process.
TEST(Layers, ABatchNormModelLearnsFashionMnistThroughTheTrainer) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  ASSERT_TRUE(std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz"))
      << "Fashion-MNIST is missing: run launch/install_deps.sh (it installs Debian's dataset-fashion-mnist)";
  StatusOr<Dataset> train = LoadFashionMnist(dir, "train", 6000);
  ASSERT_TRUE(train.ok()) << train.status();
  StatusOr<Dataset> test = LoadFashionMnist(dir, "t10k", 1000);
  ASSERT_TRUE(test.ok()) << test.status();
  LayerSpec drop = L("dropout");
  drop.rate = 0.2;
  ModelConfig c = Layers({L("normalize"), [] {
                            LayerSpec d = L("dense", 64);
                            d.activation = "relu";
                            return d;
                          }(),
                          L("batch_norm", 0, "bn"), drop, L("dense", 10), L("softmax")},
                         784, 10);
  Rig rig(c, Optimizer("adam"), 0.01);
  ASSERT_TRUE(rig.session);
  TrainerOptions options;
  options.batch_size = 64;
  options.epochs = 2;
  options.schedule.base = 0.002;
  options.log_every = 1000000;
  Trainer trainer(rig.session.get(), &rig.model, &*train, &*test, options);
  StatusOr<WorkerReport> report = trainer.Run(nullptr);
  ASSERT_TRUE(report.ok()) << report.status();
  ::testing::Test::RecordProperty("test_accuracy", std::to_string(report->test_accuracy));
  EXPECT_GE(report->test_accuracy, 0.78);
  // The moving statistics moved off their initial 0 and 1.
  const std::vector<float> mean = rig.Pull("bn/moving_mean");
  ASSERT_EQ(mean.size(), 64u);
  double off = 0;
  for (float v : mean) off += std::fabs(v);
  EXPECT_GT(off, 0.1);
}

}  // namespace
}  // namespace cairn
