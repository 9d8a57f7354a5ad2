// Tests of the ops' forward values and gradients, through the public API: a
// Graph run by a Session over a store that only holds values (the ops are
// under test here, not the optimizers; tests/session_test.cc runs Sessions
// over the servers' ShardStore).
//
// Gradients are checked against central differences of the same loss. The
// loss is ReduceSum(op(...) * R) with a fixed random R, so that every element
// of the op's output contributes with its own weight. The inputs are
// trainable variables; a Minimize step yields the gradients, captured as they
// are pushed to the store.
#include "worker/ops.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/graph.h"
#include "worker/session.h"
#include "worker/variable_store.h"

namespace cairn {
namespace {

// Tolerances of the finite-difference comparison (float32 model, eps 1e-3).
constexpr double kEps = 1e-3;
constexpr double kAbsTol = 1e-3;
constexpr double kRelTol = 1e-2;

// A deterministic uniform double in [lo, hi): the bits of mt19937_64 are
// specified by the standard, unlike std::uniform_real_distribution's output.
double Uniform(std::mt19937_64* rng, double lo, double hi) {
  return lo + (hi - lo) * (static_cast<double>((*rng)() >> 11) * (1.0 / 9007199254740992.0));
}

Tensor RandomTensor(std::mt19937_64* rng, Shape shape, double lo = -1.0, double hi = 1.0) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = static_cast<float>(Uniform(rng, lo, hi));
  return t;
}

// Values in ±[margin, 1): away from a kink at 0 (Relu).
Tensor RandomAwayFromZero(std::mt19937_64* rng, Shape shape, double margin) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    const double magnitude = Uniform(rng, margin, 1.0);
    t.data<float>()[i] = static_cast<float>(Uniform(rng, 0, 1) < 0.5 ? -magnitude : magnitude);
  }
  return t;
}

Tensor Labels(const std::vector<int64_t>& values) {
  Tensor t(DType::kInt64, {static_cast<int64_t>(values.size())});
  for (size_t i = 0; i < values.size(); ++i) t.data<int64_t>()[i] = values[i];
  return t;
}

Tensor Scalar(float v) { return Tensor::FromVector({}, {v}); }

Tensor Int64Scalar(int64_t v) {
  Tensor t(DType::kInt64, {});
  t.data<int64_t>()[0] = v;
  return t;
}

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

// Variables as plain values: created zero-filled, pulled as copies, set by
// assigns. Gradients are not applied; the last batch pushed is kept (a deep
// copy) for the test to read.
class CapturingStore : public VariableStore {
 public:
  Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                const TrainingMode& mode) override {
    for (const VariableSpec& spec : specs) values_.try_emplace(spec.name, spec.dtype, spec.shape);
    return Status::OK();
  }
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) override {
    std::map<std::string, Tensor> out;
    for (const std::string& name : names) {
      auto it = values_.find(name);
      if (it == values_.end()) return NotFound("no variable '" + name + "'");
      out[name] = it->second.Clone();
    }
    return out;
  }
  Status Push(const PushBatch& batch) override {
    if (!batch.assign_adds.empty()) return Unimplemented("CapturingStore: assign_add");
    last_ = PushBatch{};
    for (const auto& [name, t] : batch.gradients) last_.gradients[name] = t.Clone();
    last_.train_step = batch.train_step;
    last_.learning_rate = batch.learning_rate;
    for (const auto& [name, t] : batch.assigns) {
      auto it = values_.find(name);
      if (it == values_.end()) return NotFound("no variable '" + name + "'");
      it->second = t.Clone();
    }
    return Status::OK();
  }
  const PushBatch& last() const { return last_; }

 private:
  std::map<std::string, Tensor> values_;
  PushBatch last_;
};

// Builds loss = ReduceSum(y * R) over trainable variables and compares the
// gradients a Minimize step pushes with central differences of the loss.
//
//   GradientCheck check(seed);
//   Output a = check.Input("a", value);
//   ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Relu(a)));
//   check.ExpectGradientsMatchFiniteDifferences();
class GradientCheck {
 public:
  explicit GradientCheck(uint64_t seed) : rng_(seed) {}

  Graph& graph() { return graph_; }
  std::mt19937_64* rng() { return &rng_; }

  // A trainable float32 variable that holds `value` when the check runs.
  Output Input(const std::string& name, Tensor value) {
    VariableOptions o;
    o.name = name;
    o.shape = value.shape();
    Output v = graph_.Variable(o);
    Output feed = graph_.Placeholder(name + "/value", DType::kFloat32, value.shape());
    inputs_.push_back({name, v, feed, graph_.Assign(v, feed, name + "/assign"), value.Clone()});
    return v;
  }

  // A placeholder fed `value` in every Run of the check (a dropout's seed).
  Output Feed(const std::string& name, Tensor value) {
    Output p = graph_.Placeholder(name, value.dtype(), value.shape());
    feeds_[p] = std::move(value);
    return p;
  }

  // Adds the weighted loss and its train op, and starts a session holding
  // the inputs' values.
  void Finish(Output y) {
    const Shape& shape = graph_.node(y).shape;
    for (int64_t d : shape) ASSERT_GE(d, 0) << "the checked output needs a known shape";
    Output weights = graph_.Constant("check/R", RandomTensor(&rng_, shape));
    loss_ = graph_.ReduceSum(graph_.Mul(y, weights, "check/weighted"), "check/loss");
    train_ = graph_.Minimize(loss_, {}, "check/train");
    ASSERT_TRUE(graph_.status().ok()) << graph_.status();
    StatusOr<std::unique_ptr<Session>> s = Session::Create(&graph_, &store_);
    ASSERT_TRUE(s.ok()) << s.status();
    session_ = std::move(*s);
    ASSERT_TRUE(session_->Initialize().ok());
    for (const InputVar& in : inputs_) ASSERT_NO_FATAL_FAILURE(Set(in, in.value));
  }

  // The value of `node` with the inputs at their values.
  Tensor Value(Output node) {
    StatusOr<Tensor> t = session_->Run(node, feeds_);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Tensor();
  }

  void ExpectGradientsMatchFiniteDifferences() {
    // The analytic gradients, as pushed by one train step.
    StatusOr<Tensor> step = session_->Run(train_, feeds_);
    ASSERT_TRUE(step.ok()) << step.status();
    ASSERT_TRUE(store_.last().train_step);
    std::map<std::string, Tensor> analytic;
    for (const InputVar& in : inputs_) {
      auto it = store_.last().gradients.find(in.name);
      ASSERT_NE(it, store_.last().gradients.end()) << "no gradient was pushed for '" << in.name << "'";
      ASSERT_EQ(it->second.shape(), in.value.shape()) << in.name;
      analytic[in.name] = it->second;
    }
    EXPECT_EQ(store_.last().gradients.size(), inputs_.size());

    // Central differences of the loss, element by element.
    for (const InputVar& in : inputs_) {
      const Tensor& g = analytic[in.name];
      Tensor probe = in.value.Clone();
      for (int64_t i = 0; i < probe.num_elements(); ++i) {
        const float x = in.value.data<float>()[i];
        const float plus = static_cast<float>(x + kEps), minus = static_cast<float>(x - kEps);
        probe.data<float>()[i] = plus;
        const double loss_plus = Loss(in, probe);
        probe.data<float>()[i] = minus;
        const double loss_minus = Loss(in, probe);
        probe.data<float>()[i] = x;
        const double numeric = (loss_plus - loss_minus) / (static_cast<double>(plus) - static_cast<double>(minus));
        const double got = g.data<float>()[i];
        EXPECT_NEAR(got, numeric, kAbsTol + kRelTol * std::fabs(numeric))
            << "d(loss)/d(" << in.name << "[" << i << "]): analytic " << got << ", central difference " << numeric;
      }
      ASSERT_NO_FATAL_FAILURE(Set(in, in.value));
    }
  }

 private:
  struct InputVar {
    std::string name;
    Output variable, feed, assign;
    Tensor value;
  };

  void Set(const InputVar& in, const Tensor& value) {
    StatusOr<Tensor> r = session_->Run(in.assign, {{in.feed, value}});
    ASSERT_TRUE(r.ok()) << r.status();
  }

  double Loss(const InputVar& in, const Tensor& value) {
    Set(in, value);
    StatusOr<Tensor> l = session_->Run(loss_, feeds_);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? static_cast<double>(l->data<float>()[0]) : NAN;
  }

  std::mt19937_64 rng_;
  Graph graph_;
  CapturingStore store_;
  std::unique_ptr<Session> session_;
  std::vector<InputVar> inputs_;
  FeedMap feeds_;
  Output loss_, train_;
};

// --- Gradients of the unary and matrix ops -----------------------------------

TEST(OpGradient, MatMulMatchesFiniteDifferences) {
  GradientCheck check(11);
  Output a = check.Input("a", RandomTensor(check.rng(), {3, 4}));
  Output b = check.Input("b", RandomTensor(check.rng(), {4, 2}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().MatMul(a, b)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, ReluMatchesFiniteDifferencesAwayFromZero) {
  GradientCheck check(12);
  Output x = check.Input("x", RandomAwayFromZero(check.rng(), {3, 4}, 0.1));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Relu(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, SigmoidMatchesFiniteDifferences) {
  GradientCheck check(13);
  Output x = check.Input("x", RandomTensor(check.rng(), {3, 4}, -3, 3));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Sigmoid(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, TanhMatchesFiniteDifferences) {
  GradientCheck check(14);
  Output x = check.Input("x", RandomTensor(check.rng(), {3, 4}, -2, 2));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Tanh(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, SoftmaxMatchesFiniteDifferences) {
  GradientCheck check(15);
  Output x = check.Input("x", RandomTensor(check.rng(), {3, 4}, -2, 2));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Softmax(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, SoftmaxOverTheLastDimensionOfOtherRanksMatchesFiniteDifferences) {
  for (Shape shape : {Shape{5}, Shape{2, 2, 3}}) {
    SCOPED_TRACE(ShapeString(shape));
    GradientCheck check(23);
    Output x = check.Input("x", RandomTensor(check.rng(), shape, -2, 2));
    ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Softmax(x)));
    check.ExpectGradientsMatchFiniteDifferences();
  }
}

TEST(OpGradient, SquareMatchesFiniteDifferences) {
  GradientCheck check(16);
  Output x = check.Input("x", RandomTensor(check.rng(), {3, 4}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Square(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, SparseSoftmaxCrossEntropyMatchesFiniteDifferencesInTheLogits) {
  GradientCheck check(17);
  Output logits = check.Input("logits", RandomTensor(check.rng(), {4, 3}, -2, 2));
  Output labels = check.graph().Constant("labels", Labels({0, 2, 1, 2}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().SparseSoftmaxCrossEntropyWithLogits(logits, labels)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, SigmoidCrossEntropyMatchesFiniteDifferencesInTheLogits) {
  GradientCheck check(18);
  Output logits = check.Input("logits", RandomTensor(check.rng(), {3, 4}, -3, 3));
  Output labels = check.graph().Constant("labels", RandomTensor(check.rng(), {3, 4}, 0, 1));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().SigmoidCrossEntropyWithLogits(logits, labels)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, ReduceMeanMatchesFiniteDifferences) {
  GradientCheck check(19);
  Output x = check.Input("x", RandomTensor(check.rng(), {3, 4}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().ReduceMean(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, ReduceSumMatchesFiniteDifferences) {
  GradientCheck check(20);
  Output x = check.Input("x", RandomTensor(check.rng(), {3, 4}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().ReduceSum(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, AnInputUsedTwiceGetsBothContributions) {
  GradientCheck check(21);
  Output x = check.Input("x", RandomTensor(check.rng(), {2, 3}));
  // x*x + tanh(x): three paths from the loss back to x.
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Add(check.graph().Mul(x, x), check.graph().Tanh(x))));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, TwoLayerMlpMatchesFiniteDifferences) {
  GradientCheck check(22);
  Graph& g = check.graph();
  Output x = g.Constant("x", RandomTensor(check.rng(), {4, 5}));
  Output labels = g.Constant("labels", Labels({2, 0, 1, 1}));
  Output w1 = check.Input("W1", RandomTensor(check.rng(), {5, 6}));
  Output b1 = check.Input("b1", RandomTensor(check.rng(), {6}, -0.5, 0.5));
  Output w2 = check.Input("W2", RandomTensor(check.rng(), {6, 3}));
  Output b2 = check.Input("b2", RandomTensor(check.rng(), {3}, -0.5, 0.5));
  Output z1 = g.Add(g.MatMul(x, w1), b1, "z1");
  Output h = g.Relu(z1, "h");
  Output logits = g.Add(g.MatMul(h, w2), b2, "logits");
  Output loss = g.ReduceMean(g.SparseSoftmaxCrossEntropyWithLogits(logits, labels), "mlp_loss");
  ASSERT_NO_FATAL_FAILURE(check.Finish(loss));
  // The check is only meaningful if no pre-activation sits on Relu's kink.
  const Tensor pre = check.Value(z1);
  ASSERT_EQ(pre.num_elements(), 24);
  int active = 0;
  for (float v : Values(pre)) {
    ASSERT_GT(std::fabs(v), 20 * kEps) << "a pre-activation is too close to Relu's kink for this seed";
    active += v > 0;
  }
  ASSERT_GT(active, 0);
  ASSERT_LT(active, 24);  // both sides of the kink are exercised
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, ConcatAlongTheLastAxisMatchesFiniteDifferences) {
  GradientCheck check(23);
  Graph& g = check.graph();
  Output a = check.Input("a", RandomTensor(check.rng(), {3, 4}));
  Output b = check.Input("b", RandomTensor(check.rng(), {3, 1}));
  Output c = check.Input("c", RandomTensor(check.rng(), {3, 2}));
  // Tanh after the join, so each input's gradient depends on where it lands.
  Output y = g.Tanh(g.Concat({a, b, c}, /*axis=*/-1, "joined"));
  ASSERT_EQ(g.node(y).shape, (Shape{3, 7}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(y));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, ConcatAlongAMiddleOrTheFirstAxisMatchesFiniteDifferences) {
  GradientCheck check(24);
  Graph& g = check.graph();
  Output a = check.Input("a", RandomTensor(check.rng(), {2, 1, 3}));
  Output b = check.Input("b", RandomTensor(check.rng(), {2, 2, 3}));
  Output c = check.Input("c", RandomTensor(check.rng(), {1, 3, 3}));
  Output middle = g.Concat({a, b}, 1);
  Output first = g.Concat({middle, c}, 0);
  ASSERT_EQ(g.node(first).shape, (Shape{3, 3, 3}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(g.Square(first)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, ReshapeMatchesFiniteDifferences) {
  GradientCheck check(25);
  Graph& g = check.graph();
  Output x = check.Input("x", RandomTensor(check.rng(), {4, 3}));
  Output y = g.Softmax(g.Reshape(x, {-1, 6}));
  ASSERT_EQ(g.node(y).shape, (Shape{2, 6}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(y));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, ColumnMeanMatchesFiniteDifferences) {
  GradientCheck check(26);
  Output x = check.Input("x", RandomTensor(check.rng(), {5, 3}));
  Output y = check.graph().ColumnMean(x);
  ASSERT_EQ(check.graph().node(y).shape, (Shape{3}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(y));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, RsqrtMatchesFiniteDifferencesOfPositiveInputs) {
  GradientCheck check(27);
  Output x = check.Input("x", RandomTensor(check.rng(), {3, 4}, 0.5, 2));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Rsqrt(x)));
  check.ExpectGradientsMatchFiniteDifferences();
}

TEST(OpGradient, DropoutMatchesFiniteDifferencesWithItsSeedFed) {
  GradientCheck check(28);
  Graph& g = check.graph();
  Output x = check.Input("x", RandomTensor(check.rng(), {4, 5}));
  Output seed = check.Feed("seed", Int64Scalar(12345));
  // Tanh before the mask, so the gradient of what is kept is not constant.
  Output dropped = g.Dropout(g.Tanh(x), seed, 0.3f, /*salt=*/7, "dropped");
  ASSERT_NO_FATAL_FAILURE(check.Finish(dropped));
  // Meaningful only if this seed's mask both drops and keeps.
  int zeros = 0;
  for (float v : Values(check.Value(dropped))) zeros += v == 0.0f;
  ASSERT_GT(zeros, 0);
  ASSERT_LT(zeros, 20);
  // Only x's gradient is pushed: the seed has none.
  check.ExpectGradientsMatchFiniteDifferences();
}

// Batch normalization (without scale and offset) built from primitives:
// every element's gradient goes through both statistics.
TEST(OpGradient, BatchNormalizationOfPrimitivesMatchesFiniteDifferences) {
  GradientCheck check(29);
  Graph& g = check.graph();
  Output x = check.Input("x", RandomTensor(check.rng(), {6, 4}));
  Output centered = g.Sub(x, g.ColumnMean(x), "centered");
  Output variance = g.ColumnMean(g.Square(centered), "variance");
  Output eps = g.Constant("eps", Scalar(1e-3f));
  Output y = g.Mul(centered, g.Rsqrt(g.Add(variance, eps)), "normalized");
  ASSERT_EQ(g.node(y).shape, (Shape{6, 4}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(y));
  check.ExpectGradientsMatchFiniteDifferences();
}

// --- Gradients of the binary ops, with every broadcast ----------------------

struct BinaryCase {
  OpType op;
  Shape a, b;
  std::string name;
};

Output ApplyBinary(Graph* g, OpType op, Output a, Output b) {
  switch (op) {
    case OpType::kAdd: return g->Add(a, b);
    case OpType::kSub: return g->Sub(a, b);
    default: return g->Mul(a, b);
  }
}

class BinaryOpGradient : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryOpGradient, MatchesFiniteDifferences) {
  const BinaryCase& c = GetParam();
  GradientCheck check(100 + static_cast<uint64_t>(c.op));
  Output a = check.Input("a", RandomTensor(check.rng(), c.a));
  Output b = check.Input("b", RandomTensor(check.rng(), c.b));
  Output y = ApplyBinary(&check.graph(), c.op, a, b);
  ASSERT_EQ(check.graph().node(y).shape, (Shape{3, 4}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(y));
  check.ExpectGradientsMatchFiniteDifferences();
}

std::vector<BinaryCase> BinaryCases() {
  std::vector<BinaryCase> cases;
  for (OpType op : {OpType::kAdd, OpType::kSub, OpType::kMul}) {
    const std::string name = OpTypeName(op);
    cases.push_back({op, {3, 4}, {3, 4}, name + "OfEqualShapes"});
    cases.push_back({op, {3, 4}, {}, name + "OfAScalarOnTheRight"});
    cases.push_back({op, {}, {3, 4}, name + "OfAScalarOnTheLeft"});
    cases.push_back({op, {3, 4}, {1}, name + "OfAOneElementVectorOnTheRight"});
    cases.push_back({op, {1}, {3, 4}, name + "OfAOneElementVectorOnTheLeft"});
    cases.push_back({op, {3, 4}, {4}, name + "OfARowVectorOnTheRight"});
    cases.push_back({op, {4}, {3, 4}, name + "OfARowVectorOnTheLeft"});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AddSubMul, BinaryOpGradient, ::testing::ValuesIn(BinaryCases()),
                         [](const ::testing::TestParamInfo<BinaryCase>& info) { return info.param.name; });

// --- Forward values ----------------------------------------------------------

// Runs `fetch` in a fresh session (the graph holds no variables).
StatusOr<Tensor> Evaluate(const Graph& g, Output fetch, const FeedMap& feeds = {}) {
  CapturingStore store;
  StatusOr<std::unique_ptr<Session>> s = Session::Create(&g, &store);
  if (!s.ok()) return s.status();
  return (*s)->Run(fetch, feeds);
}

void ExpectValues(const StatusOr<Tensor>& got, const Shape& shape, const std::vector<double>& expected,
                  double tolerance = 1e-6) {
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->dtype(), DType::kFloat32);
  ASSERT_EQ(got->shape(), shape);
  ASSERT_EQ(got->num_elements(), static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(got->data<float>()[i], expected[i], tolerance * (1 + std::fabs(expected[i]))) << "element " << i;
  }
}

TEST(OpForward, MatMulMultipliesMatrices) {
  Graph g;
  Output a = g.Constant("a", Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6}));
  Output b = g.Constant("b", Tensor::FromVector({3, 2}, {7, 8, 9, 10, 11, 12}));
  ExpectValues(Evaluate(g, g.MatMul(a, b)), {2, 2}, {58, 64, 139, 154});
}

TEST(OpForward, AddSubAndMulBroadcastScalarsAndRows) {
  Graph g;
  Output m = g.Constant("m", Tensor::FromVector({2, 2}, {1, 2, 3, 4}));
  Output row = g.Constant("row", Tensor::FromVector({2}, {10, 20}));
  Output s = g.Constant("s", Scalar(3));
  ExpectValues(Evaluate(g, g.Add(m, row)), {2, 2}, {11, 22, 13, 24});
  ExpectValues(Evaluate(g, g.Add(row, m)), {2, 2}, {11, 22, 13, 24});
  ExpectValues(Evaluate(g, g.Sub(m, row)), {2, 2}, {-9, -18, -7, -16});
  ExpectValues(Evaluate(g, g.Sub(row, m)), {2, 2}, {9, 18, 7, 16});
  ExpectValues(Evaluate(g, g.Sub(s, m)), {2, 2}, {2, 1, 0, -1});
  ExpectValues(Evaluate(g, g.Sub(m, s)), {2, 2}, {-2, -1, 0, 1});
  ExpectValues(Evaluate(g, g.Mul(m, row)), {2, 2}, {10, 40, 30, 80});
  ExpectValues(Evaluate(g, g.Mul(s, m)), {2, 2}, {3, 6, 9, 12});
  ExpectValues(Evaluate(g, g.Mul(m, m)), {2, 2}, {1, 4, 9, 16});
}

TEST(OpForward, ElementwiseActivationsMatchTheirDefinitions) {
  Graph g;
  const std::vector<float> xs = {-2.5f, -0.5f, 0.0f, 0.75f, 3.0f};
  Output x = g.Constant("x", Tensor::FromVector({5}, xs));
  std::vector<double> relu, sigmoid, tanh, square;
  for (double v : xs) {
    relu.push_back(v > 0 ? v : 0);
    sigmoid.push_back(1 / (1 + std::exp(-v)));
    tanh.push_back(std::tanh(v));
    square.push_back(v * v);
  }
  ExpectValues(Evaluate(g, g.Relu(x)), {5}, relu);
  ExpectValues(Evaluate(g, g.Sigmoid(x)), {5}, sigmoid);
  ExpectValues(Evaluate(g, g.Tanh(x)), {5}, tanh);
  ExpectValues(Evaluate(g, g.Square(x)), {5}, square);
}

TEST(OpForward, SigmoidSaturatesWithoutOverflow) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({2}, {-200.0f, 200.0f}));
  ExpectValues(Evaluate(g, g.Sigmoid(x)), {2}, {0, 1});
}

TEST(OpForward, SoftmaxNormalizesEachRow) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({2, 3}, {1, 2, 3, 1000, 1000, 1000}));
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  ExpectValues(Evaluate(g, g.Softmax(x)), {2, 3},
               {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z, 1.0 / 3, 1.0 / 3, 1.0 / 3});
}

// Graph::Softmax is documented as "over the last dimension" and accepts any
// rank; a vector's last dimension is its only one.
TEST(OpForward, SoftmaxOfAVectorNormalizesOverItsOnlyDimension) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({3}, {1, 2, 3}));
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  ExpectValues(Evaluate(g, g.Softmax(x)), {3}, {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z});
}

TEST(OpForward, SoftmaxOfARank3TensorNormalizesOverTheLastDimension) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({1, 2, 2}, {0, 0, 0, std::log(3.0f)}));
  ExpectValues(Evaluate(g, g.Softmax(x)), {1, 2, 2}, {0.5, 0.5, 0.25, 0.75});
}

TEST(OpForward, SparseSoftmaxCrossEntropyIsLogSumExpMinusTheLabelsLogit) {
  Graph g;
  Output logits = g.Constant("logits", Tensor::FromVector({3, 3}, {0, 0, 0, 1, 2, 3, 500, 0, -500}));
  Output labels = g.Constant("labels", Labels({1, 2, 0}));
  const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  ExpectValues(Evaluate(g, g.SparseSoftmaxCrossEntropyWithLogits(logits, labels)), {3},
               {std::log(3.0), lse - 3.0, 0.0});
}

TEST(OpForward, SigmoidCrossEntropyIsStableForLargeLogits) {
  Graph g;
  Output logits = g.Constant("logits", Tensor::FromVector({5}, {0, 2, -1, 100, -100}));
  Output labels = g.Constant("labels", Tensor::FromVector({5}, {1, 0, 0.25, 0, 1}));
  auto xent = [](double x, double z) {
    const double p = 1 / (1 + std::exp(-x));
    return -z * std::log(p) - (1 - z) * std::log(1 - p);
  };
  ExpectValues(Evaluate(g, g.SigmoidCrossEntropyWithLogits(logits, labels)), {5},
               {std::log(2.0), xent(2, 0), xent(-1, 0.25), 100, 100}, 1e-5);
}

TEST(OpForward, ReduceMeanAndReduceSumCoverEveryElement) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 9}));
  ExpectValues(Evaluate(g, g.ReduceSum(x)), {}, {24});
  ExpectValues(Evaluate(g, g.ReduceMean(x)), {}, {4});
}

TEST(OpForward, ConcatJoinsRowsAlongTheAxis) {
  Graph g;
  Output a = g.Constant("a", Tensor::FromVector({2, 2}, {1, 2, 3, 4}));
  Output b = g.Constant("b", Tensor::FromVector({2, 1}, {5, 6}));
  ExpectValues(Evaluate(g, g.Concat({a, b})), {2, 3}, {1, 2, 5, 3, 4, 6});
  ExpectValues(Evaluate(g, g.Concat({b, a}, -1)), {2, 3}, {5, 1, 2, 6, 3, 4});
  ExpectValues(Evaluate(g, g.Concat({a, a}, 0)), {4, 2}, {1, 2, 3, 4, 1, 2, 3, 4});
}

TEST(OpForward, ConcatOfAnUnknownBatchTakesTheFedRows) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 1});
  Output y = g.Placeholder("y", DType::kFloat32, {-1, 2});
  Output joined = g.Concat({x, y}, 1, "joined");
  EXPECT_EQ(g.node(joined).shape, (Shape{-1, 3}));
  const Tensor rows = Tensor::FromVector({2, 2}, {3, 4, 5, 6});
  ExpectValues(Evaluate(g, joined, {{x, Tensor::FromVector({2, 1}, {1, 2})}, {y, rows}}), {2, 3}, {1, 3, 4, 2, 5, 6});
  // Batches of different sizes do not join.
  StatusOr<Tensor> r = Evaluate(g, joined, {{x, Tensor::FromVector({1, 1}, {1})}, {y, rows}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'joined'"), std::string::npos) << r.status();
}

TEST(OpForward, ReshapeKeepsTheElementsAndInfersItsUnknownDimension) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 1});
  Output flat = g.Reshape(x, {-1}, "flat");
  EXPECT_EQ(g.node(flat).shape, (Shape{-1}));
  ExpectValues(Evaluate(g, flat, {{x, Tensor::FromVector({3, 1}, {1, 2, 3})}}), {3}, {1, 2, 3});
  Output pairs = g.Reshape(x, {-1, 2}, "pairs");
  StatusOr<Tensor> r = Evaluate(g, pairs, {{x, Tensor::FromVector({3, 1}, {1, 2, 3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'pairs'"), std::string::npos) << r.status();
}

TEST(OpForward, ReshapeOfInt64IdsKeepsTheirDtype) {
  Graph g;
  Output r = g.Reshape(g.Constant("ids", Labels({10, 11, 12, 13})), {2, 2});
  EXPECT_EQ(g.node(r).dtype, DType::kInt64);
  StatusOr<Tensor> got = Evaluate(g, r);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->shape(), (Shape{2, 2}));
  EXPECT_EQ(got->data<int64_t>()[3], 13);
}

TEST(OpForward, ArgMaxPicksEachRowsLargestColumn) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({3, 3}, {1, 5, 2, 7, 0, -1, -3, -2, 4}));
  StatusOr<Tensor> got = Evaluate(g, g.ArgMax(x));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->dtype(), DType::kInt64);
  ASSERT_EQ(got->shape(), (Shape{3}));
  EXPECT_EQ(got->data<int64_t>()[0], 1);
  EXPECT_EQ(got->data<int64_t>()[1], 0);
  EXPECT_EQ(got->data<int64_t>()[2], 2);
}

TEST(OpForward, AccuracyIsTheFractionOfRowsWhoseArgMaxIsTheLabel) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({4, 3}, {1, 5, 2, 7, 0, -1, -3, -2, 4, 0, 1, 0}));
  Output labels = g.Placeholder("labels", DType::kInt64, {-1});
  Output acc = g.Accuracy(x, labels);
  ExpectValues(Evaluate(g, acc, {{labels, Labels({1, 0, 2, 1})}}), {}, {1.0});
  ExpectValues(Evaluate(g, acc, {{labels, Labels({1, 2, 2, 0})}}), {}, {0.5});
  ExpectValues(Evaluate(g, acc, {{labels, Labels({0, 1, 0, 2})}}), {}, {0.0});
}

TEST(OpForward, ColumnMeanAveragesEachColumnOverTheRows) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({3, 2}, {1, 2, 3, 4, 5, 9}));
  ExpectValues(Evaluate(g, g.ColumnMean(x)), {2}, {3, 5});
}

TEST(OpForward, ColumnMeanOfAnUnknownBatchTakesTheFedRowsAndRefusesNone) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 2});
  Output mean = g.ColumnMean(x, "mean");
  EXPECT_EQ(g.node(mean).shape, (Shape{2}));
  ExpectValues(Evaluate(g, mean, {{x, Tensor::FromVector({2, 2}, {1, -4, 2, 8})}}), {2}, {1.5, 2});
  StatusOr<Tensor> r = Evaluate(g, mean, {{x, Tensor(DType::kFloat32, {0, 2})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'mean'"), std::string::npos) << r.status();
}

TEST(OpForward, RsqrtIsOneOverTheSquareRoot) {
  Graph g;
  Output x = g.Constant("x", Tensor::FromVector({2, 3}, {0.25f, 1, 4, 16, 2, 1e-4f}));
  ExpectValues(Evaluate(g, g.Rsqrt(x)), {2, 3}, {2, 1, 0.5, 0.25, 1 / std::sqrt(2.0), 100});
}

// Dropout of `x` with the seed placeholder fed `seed`, in a fresh session.
Tensor RunDropout(const Tensor& x, float rate, uint64_t salt, int64_t seed) {
  Graph g;
  Output in = g.Constant("x", x);
  Output s = g.Placeholder("seed", DType::kInt64, {});
  Output d = g.Dropout(in, s, rate, salt, "dropout");
  StatusOr<Tensor> r = Evaluate(g, d, {{s, Int64Scalar(seed)}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Tensor();
}

// Element i kept: a 1 (x holds no zeros).
std::string KeptPattern(const Tensor& t, int64_t n) {
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += t.data<float>()[i] == 0.0f ? '0' : '1';
  return out;
}

TEST(OpForward, DropoutMaskDependsOnlyOnTheSaltTheSeedAndTheIndex) {
  std::mt19937_64 rng(30);
  const Tensor x = RandomAwayFromZero(&rng, {1000}, 0.1);
  const std::string mask = KeptPattern(RunDropout(x, 0.5f, 3, 77), 1000);
  EXPECT_EQ(KeptPattern(RunDropout(x, 0.5f, 3, 77), 1000), mask) << "another session, the same step";
  EXPECT_NE(KeptPattern(RunDropout(x, 0.5f, 3, 78), 1000), mask) << "another step";
  EXPECT_NE(KeptPattern(RunDropout(x, 0.5f, 4, 77), 1000), mask) << "another layer's salt";
  // The shape and the count of elements do not matter, only the flat index.
  const Tensor matrix = Tensor::FromVector({40, 25}, Values(x));
  EXPECT_EQ(KeptPattern(RunDropout(matrix, 0.5f, 3, 77), 1000), mask);
  const Tensor head = Tensor::FromVector({300}, std::vector<float>(x.data<float>(), x.data<float>() + 300));
  EXPECT_EQ(KeptPattern(RunDropout(head, 0.5f, 3, 77), 300), mask.substr(0, 300));
}

// The mask is part of the contract (every machine drops the same elements
// of a step). These bits were computed apart from the kernel, in Python:
//   mix = SplitMix64's finalizer, G = 0x9e3779b97f4a7c15
//   stream = mix(mix(salt + G) ^ seed); keep[i] = (mix(stream + (i+1)*G) >> 40) / 2^24 >= rate
TEST(OpForward, DropoutMaskOfAKnownSeedIsPinned) {
  const Tensor ones = Tensor::FromVector({32}, std::vector<float>(32, 1.0f));
  EXPECT_EQ(KeptPattern(RunDropout(ones, 0.5f, /*salt=*/0, /*seed=*/1), 32), "10100000101011011011111001110000");
}

TEST(OpForward, DropoutDropsTheRateAndScalesTheRestByExactlyOneOverOneMinusTheRate) {
  std::mt19937_64 rng(31);
  const Tensor x = RandomAwayFromZero(&rng, {100000}, 0.1);
  for (float rate : {0.1f, 0.3f, 0.5f, 0.9f}) {
    SCOPED_TRACE(rate);
    const Tensor y = RunDropout(x, rate, 11, 5);
    ASSERT_EQ(y.shape(), x.shape());
    const float scale = 1.0f / (1.0f - rate);
    int64_t zeros = 0;
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      const float v = y.data<float>()[i];
      if (v == 0.0f) {
        ++zeros;
      } else {
        ASSERT_EQ(v, x.data<float>()[i] * scale) << "element " << i;
      }
    }
    EXPECT_NEAR(static_cast<double>(zeros) / x.num_elements(), rate, 0.01);
  }
}

TEST(OpForward, DropoutAtRateZeroIsTheIdentity) {
  std::mt19937_64 rng(32);
  const Tensor x = RandomTensor(&rng, {50, 20});
  const Tensor y = RunDropout(x, 0.0f, 1, 9);
  ASSERT_EQ(y.shape(), x.shape());
  EXPECT_EQ(Values(y), Values(x));
}

// --- Runtime errors ----------------------------------------------------------

TEST(OpErrors, SparseSoftmaxCrossEntropyLabelOutsideTheClassesIsInvalidArgumentNamingTheNode) {
  Graph g;
  Output logits = g.Constant("logits", Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6}));
  Output labels = g.Placeholder("labels", DType::kInt64, {-1});
  Output xent = g.SparseSoftmaxCrossEntropyWithLogits(logits, labels, "xent");
  for (int64_t bad : {int64_t{3}, int64_t{-1}, int64_t{1000}}) {
    StatusOr<Tensor> r = Evaluate(g, xent, {{labels, Labels({0, bad})}});
    ASSERT_FALSE(r.ok()) << "label " << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
    EXPECT_NE(r.status().message().find("'xent'"), std::string::npos) << r.status();
  }
  EXPECT_TRUE(Evaluate(g, xent, {{labels, Labels({0, 2})}}).ok());
}

TEST(OpErrors, AccuracyLabelOutsideTheClassesIsInvalidArgumentNamingTheNode) {
  Graph g;
  Output logits = g.Constant("logits", Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6}));
  Output labels = g.Placeholder("labels", DType::kInt64, {-1});
  Output acc = g.Accuracy(logits, labels, "acc");
  StatusOr<Tensor> r = Evaluate(g, acc, {{labels, Labels({0, 3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'acc'"), std::string::npos) << r.status();
}

TEST(OpErrors, LabelCountDifferentFromTheLogitRowsIsInvalidArgumentNamingTheNode) {
  Graph g;
  Output logits = g.Constant("logits", Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6}));
  Output labels = g.Placeholder("labels", DType::kInt64, {-1});
  Output xent = g.SparseSoftmaxCrossEntropyWithLogits(logits, labels, "xent");
  StatusOr<Tensor> r = Evaluate(g, xent, {{labels, Labels({0, 1, 2})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'xent'"), std::string::npos) << r.status();
}

TEST(OpErrors, RuntimeShapeMismatchIsInvalidArgumentNamingTheNode) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, -1});
  Output w = g.Constant("w", Tensor::FromVector({3, 2}, {1, 2, 3, 4, 5, 6}));
  Output m = g.Constant("m", Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6}));
  Output product = g.MatMul(x, w, "product");
  Output sum = g.Add(x, m, "sum");
  ASSERT_TRUE(g.status().ok()) << g.status();

  StatusOr<Tensor> r = Evaluate(g, product, {{x, Tensor(DType::kFloat32, {2, 4})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'product'"), std::string::npos) << r.status();

  r = Evaluate(g, sum, {{x, Tensor(DType::kFloat32, {3, 2})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'sum'"), std::string::npos) << r.status();

  EXPECT_TRUE(Evaluate(g, product, {{x, Tensor(DType::kFloat32, {5, 3})}}).ok());
}

TEST(OpDifferentiability, OnlyStatefulSourceAndIntegerOpsAreNotDifferentiable) {
  for (OpType op : {OpType::kMatMul, OpType::kAdd, OpType::kSub, OpType::kMul, OpType::kRelu, OpType::kSigmoid,
                    OpType::kTanh, OpType::kSoftmax, OpType::kSquare, OpType::kSparseSoftmaxCrossEntropyWithLogits,
                    OpType::kSigmoidCrossEntropyWithLogits, OpType::kReduceMean, OpType::kReduceSum,
                    OpType::kEmbeddingLookup, OpType::kEmbeddingBag, OpType::kConcat, OpType::kReshape,
                    OpType::kColumnMean, OpType::kRsqrt, OpType::kDropout}) {
    EXPECT_TRUE(IsDifferentiable(op)) << OpTypeName(op);
  }
  for (OpType op : {OpType::kPlaceholder, OpType::kConstant, OpType::kVariable, OpType::kArgMax, OpType::kAccuracy,
                    OpType::kAssign, OpType::kAssignAdd, OpType::kMinimize, OpType::kSparseTable,
                    OpType::kSelectColumns}) {
    EXPECT_FALSE(IsDifferentiable(op)) << OpTypeName(op);
  }
}

}  // namespace
}  // namespace cairn
