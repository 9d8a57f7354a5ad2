#include "ps/optimizer.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace cairn {
namespace {

// Every update test starts from this shard and applies these two gradients.
// The third element's second gradient is zero on purpose.
const std::vector<double> kVar = {1.0, -2.0, 0.5};
const std::vector<double> kGrad1 = {0.1, -0.2, 0.3};
const std::vector<double> kGrad2 = {-0.4, 0.1, 0.0};
constexpr double kLr = 0.1;
constexpr double kTolerance = 1e-6;

std::vector<float> ToFloat(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// `v` repeated to 1029 elements: long enough for Eigen's packet loops, and not
// a multiple of any packet size, so the scalar tail runs too.
std::vector<float> Long(const std::vector<double>& v) {
  std::vector<float> out;
  for (int r = 0; r < 343; ++r) out.insert(out.end(), v.begin(), v.end());
  return out;
}

// A shard as the shard store lays it out: var plus one buffer per slot, each
// filled with the slot's initial value.
class Shard {
 public:
  Shard(const Optimizer& optimizer, std::vector<float> var) : optimizer_(optimizer), var_(std::move(var)) {
    for (const SlotDef& def : optimizer.Slots()) slots_.emplace_back(def.scalar ? 1 : var_.size(), def.initial);
  }

  void Step(const std::vector<float>& grad, double lr) {
    ASSERT_EQ(grad.size(), var_.size());
    std::vector<float*> slots;
    for (std::vector<float>& s : slots_) slots.push_back(s.data());
    optimizer_.Apply(var_.data(), grad.data(), static_cast<int64_t>(var_.size()), slots.data(), static_cast<float>(lr));
  }

  const std::vector<float>& var() const { return var_; }
  const std::vector<float>& slot(size_t i) const { return slots_.at(i); }

 private:
  const Optimizer& optimizer_;
  std::vector<float> var_;
  std::vector<std::vector<float>> slots_;
};

void ExpectNear(const std::vector<float>& actual, const std::vector<double>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], kTolerance) << what << "[" << i << "]";
  }
}

OptimizerSpec Spec(const std::string& kind) {
  OptimizerSpec spec;
  spec.kind = kind;
  spec.learning_rate = kLr;
  return spec;
}

// --- Slots and names -------------------------------------------------------

void ExpectSlot(const SlotDef& def, const std::string& name, bool scalar, float initial) {
  EXPECT_EQ(def.name, name);
  EXPECT_EQ(def.scalar, scalar) << name;
  EXPECT_FLOAT_EQ(def.initial, initial) << name;
}

TEST(Optimizer, EachKindIsCreatedUnderItsName) {
  const std::vector<std::pair<std::string, std::string>> kinds = {
      {"sgd", "SGD"}, {"momentum", "Momentum"}, {"adagrad", "Adagrad"}, {"adam", "Adam"}, {"ftrl", "Ftrl"}};
  for (const auto& [kind, name] : kinds) {
    StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(Spec(kind));
    ASSERT_TRUE(opt.ok()) << kind << ": " << opt.status();
    EXPECT_STREQ((*opt)->Name(), name.c_str());
  }
}

TEST(Optimizer, SgdKeepsNoSlots) {
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(Spec("sgd"));
  ASSERT_TRUE(opt.ok()) << opt.status();
  EXPECT_TRUE((*opt)->Slots().empty());
}

TEST(Optimizer, MomentumKeepsOnePerElementAccumulatorStartingAtZero) {
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(Spec("momentum"));
  ASSERT_TRUE(opt.ok()) << opt.status();
  const std::vector<SlotDef> slots = (*opt)->Slots();
  ASSERT_EQ(slots.size(), 1u);
  ExpectSlot(slots[0], "momentum", false, 0.0f);
}

TEST(Optimizer, AdagradAccumulatorStartsAtTheInitialAccumulator) {
  OptimizerSpec spec = Spec("adagrad");
  spec.initial_accumulator = 0.25;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  ASSERT_TRUE(opt.ok()) << opt.status();
  const std::vector<SlotDef> slots = (*opt)->Slots();
  ASSERT_EQ(slots.size(), 1u);
  ExpectSlot(slots[0], "accumulator", false, 0.25f);
}

TEST(Optimizer, AdamKeepsMomentsPerElementAndBetaPowersAsScalarsStartingAtTheBetas) {
  OptimizerSpec spec = Spec("adam");
  spec.beta1 = 0.8;
  spec.beta2 = 0.99;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  ASSERT_TRUE(opt.ok()) << opt.status();
  const std::vector<SlotDef> slots = (*opt)->Slots();
  ASSERT_EQ(slots.size(), 4u);
  ExpectSlot(slots[0], "m", false, 0.0f);
  ExpectSlot(slots[1], "v", false, 0.0f);
  ExpectSlot(slots[2], "beta1_power", true, 0.8f);
  ExpectSlot(slots[3], "beta2_power", true, 0.99f);
}

TEST(Optimizer, FtrlKeepsAccumulatorStartingAtTheInitialAccumulatorAndLinearStartingAtZero) {
  OptimizerSpec spec = Spec("ftrl");
  spec.initial_accumulator = 0.5;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  ASSERT_TRUE(opt.ok()) << opt.status();
  const std::vector<SlotDef> slots = (*opt)->Slots();
  ASSERT_EQ(slots.size(), 2u);
  ExpectSlot(slots[0], "accumulator", false, 0.5f);
  ExpectSlot(slots[1], "linear", false, 0.0f);
}

// --- Updates, against the formulas worked in double -------------------------

TEST(Optimizer, SgdStepsSubtractTheScaledGradient) {
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(Spec("sgd"));
  ASSERT_TRUE(opt.ok()) << opt.status();
  Shard shard(**opt, ToFloat(kVar));
  std::vector<double> var = kVar;
  for (const auto* g : {&kGrad1, &kGrad2}) {
    shard.Step(ToFloat(*g), kLr);
    for (size_t i = 0; i < var.size(); ++i) var[i] -= kLr * (*g)[i];
    ExpectNear(shard.var(), var, "var");
  }
}

// tf ApplyMomentum by hand; returns the Shard's expected var and accumulator
// after each of the two steps.
struct MomentumByHand {
  double momentum;
  bool nesterov;
  std::vector<double> var = kVar;
  std::vector<double> accum = std::vector<double>(kVar.size(), 0.0);

  void Step(const std::vector<double>& g) {
    for (size_t i = 0; i < var.size(); ++i) {
      accum[i] = momentum * accum[i] + g[i];
      var[i] -= nesterov ? kLr * (g[i] + momentum * accum[i]) : kLr * accum[i];
    }
  }
};

void CheckMomentum(bool nesterov) {
  OptimizerSpec spec = Spec("momentum");
  spec.momentum = 0.9;
  spec.nesterov = nesterov;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  ASSERT_TRUE(opt.ok()) << opt.status();
  Shard shard(**opt, ToFloat(kVar));
  MomentumByHand expected{0.9, nesterov};
  int step = 1;
  for (const auto* g : {&kGrad1, &kGrad2}) {
    SCOPED_TRACE("step " + std::to_string(step++));
    shard.Step(ToFloat(*g), kLr);
    expected.Step(*g);
    ExpectNear(shard.var(), expected.var, "var");
    ExpectNear(shard.slot(0), expected.accum, "momentum");
  }
}

TEST(Optimizer, MomentumStepsMatchTheFormula) { CheckMomentum(/*nesterov=*/false); }

TEST(Optimizer, NesterovMomentumStepsMatchTheFormula) { CheckMomentum(/*nesterov=*/true); }

TEST(Optimizer, NesterovMomentumMovesVarDifferentlyFromPlainMomentum) {
  OptimizerSpec spec = Spec("momentum");
  StatusOr<std::unique_ptr<Optimizer>> plain = Optimizer::Create(spec);
  spec.nesterov = true;
  StatusOr<std::unique_ptr<Optimizer>> nesterov = Optimizer::Create(spec);
  ASSERT_TRUE(plain.ok() && nesterov.ok());
  Shard a(**plain, ToFloat(kVar));
  Shard b(**nesterov, ToFloat(kVar));
  a.Step(ToFloat(kGrad1), kLr);
  b.Step(ToFloat(kGrad1), kLr);
  // The accumulator is the same; only where var is moved differs:
  // plain by lr * g, Nesterov by lr * (1 + momentum) * g on the first step.
  EXPECT_EQ(a.slot(0), b.slot(0));
  for (size_t i = 0; i < kVar.size(); ++i) {
    EXPECT_GT(std::abs(a.var()[i] - b.var()[i]), 1e-3) << i;
  }
}

TEST(Optimizer, AdagradStepsMatchTheFormula) {
  OptimizerSpec spec = Spec("adagrad");
  spec.initial_accumulator = 0.1;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  ASSERT_TRUE(opt.ok()) << opt.status();
  Shard shard(**opt, ToFloat(kVar));
  std::vector<double> var = kVar;
  std::vector<double> accum(kVar.size(), 0.1);
  int step = 1;
  for (const auto* g : {&kGrad1, &kGrad2}) {
    SCOPED_TRACE("step " + std::to_string(step++));
    shard.Step(ToFloat(*g), kLr);
    for (size_t i = 0; i < var.size(); ++i) {
      accum[i] += (*g)[i] * (*g)[i];
      var[i] -= kLr * (*g)[i] / std::sqrt(accum[i]);
    }
    ExpectNear(shard.var(), var, "var");
    ExpectNear(shard.slot(0), accum, "accumulator");
  }
}

TEST(Optimizer, AdamStepsMatchTheFormula) {
  const double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7;
  OptimizerSpec spec = Spec("adam");
  spec.beta1 = beta1;
  spec.beta2 = beta2;
  spec.epsilon = epsilon;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  ASSERT_TRUE(opt.ok()) << opt.status();
  Shard shard(**opt, ToFloat(kVar));
  std::vector<double> var = kVar;
  std::vector<double> m(kVar.size(), 0.0), v(kVar.size(), 0.0);
  double beta1_power = beta1, beta2_power = beta2;
  int step = 1;
  for (const auto* g : {&kGrad1, &kGrad2}) {
    SCOPED_TRACE("step " + std::to_string(step++));
    shard.Step(ToFloat(*g), kLr);
    const double lr_t = kLr * std::sqrt(1 - beta2_power) / (1 - beta1_power);
    for (size_t i = 0; i < var.size(); ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * (*g)[i];
      v[i] = beta2 * v[i] + (1 - beta2) * (*g)[i] * (*g)[i];
      var[i] -= lr_t * m[i] / (std::sqrt(v[i]) + epsilon);
    }
    beta1_power *= beta1;
    beta2_power *= beta2;
    ExpectNear(shard.var(), var, "var");
    ExpectNear(shard.slot(0), m, "m");
    ExpectNear(shard.slot(1), v, "v");
    ExpectNear(shard.slot(2), {beta1_power}, "beta1_power");
    ExpectNear(shard.slot(3), {beta2_power}, "beta2_power");
  }
}

TEST(Optimizer, AdamStepWithZeroGradientLeavesVarUnchanged) {
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(Spec("adam"));
  ASSERT_TRUE(opt.ok()) << opt.status();
  for (const std::vector<float>& var : {ToFloat(kVar), Long(kVar)}) {
    Shard shard(**opt, var);
    const std::vector<float> zeros(var.size(), 0.0f);
    shard.Step(zeros, kLr);
    EXPECT_EQ(shard.var(), var);
    EXPECT_EQ(shard.slot(0), zeros);
    EXPECT_EQ(shard.slot(1), zeros);
  }
}

// tf ApplyFtrl by hand.
struct FtrlByHand {
  double l1, l2, lr_power;
  std::vector<double> var = kVar;
  std::vector<double> accum;
  std::vector<double> linear = std::vector<double>(kVar.size(), 0.0);

  void Step(const std::vector<double>& g) {
    for (size_t i = 0; i < var.size(); ++i) {
      const double accum_new = accum[i] + g[i] * g[i];
      linear[i] += g[i] - (std::pow(accum_new, -lr_power) - std::pow(accum[i], -lr_power)) / kLr * var[i];
      const double quadratic = std::pow(accum_new, -lr_power) / kLr + 2 * l2;
      const double sign = linear[i] > 0 ? 1.0 : -1.0;
      var[i] = std::abs(linear[i]) > l1 ? (sign * l1 - linear[i]) / quadratic : 0.0;
      accum[i] = accum_new;
    }
  }
};

// Returns the var after the first step, for the caller's extra checks.
std::vector<float> CheckFtrl(double lr_power) {
  const double initial_accumulator = 0.1, l1 = 0.06, l2 = 0.1;
  OptimizerSpec spec = Spec("ftrl");
  spec.initial_accumulator = initial_accumulator;
  spec.l1 = l1;
  spec.l2 = l2;
  spec.lr_power = lr_power;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  EXPECT_TRUE(opt.ok()) << opt.status();
  if (!opt.ok()) return {};
  Shard shard(**opt, ToFloat(kVar));
  FtrlByHand expected{l1, l2, lr_power, kVar, std::vector<double>(kVar.size(), initial_accumulator)};
  std::vector<float> first_var;
  int step = 1;
  for (const auto* g : {&kGrad1, &kGrad2}) {
    SCOPED_TRACE("step " + std::to_string(step++));
    shard.Step(ToFloat(*g), kLr);
    expected.Step(*g);
    ExpectNear(shard.var(), expected.var, "var");
    ExpectNear(shard.slot(0), expected.accum, "accumulator");
    ExpectNear(shard.slot(1), expected.linear, "linear");
    if (first_var.empty()) first_var = shard.var();
  }
  return first_var;
}

TEST(Optimizer, FtrlStepsMatchTheFormula) {
  const std::vector<float> first_var = CheckFtrl(/*lr_power=*/-0.5);
  ASSERT_EQ(first_var.size(), 3u);
  // With l1 = 0.06 the first element's linear term (about -0.054) is inside
  // the L1 ball, so FTRL sets that weight to exactly zero.
  EXPECT_EQ(first_var[0], 0.0f);
  EXPECT_NE(first_var[1], 0.0f);
}

TEST(Optimizer, FtrlWithAnotherLrPowerStepsMatchTheFormula) { CheckFtrl(/*lr_power=*/-0.75); }

TEST(Optimizer, FtrlWithZeroLrPowerStepsMatchTheFormula) { CheckFtrl(/*lr_power=*/0.0); }

// Shards are millions of floats; Eigen handles them in packets plus a tail,
// and its packet sqrt may differ from std::sqrt in the last bit. Every element
// of a long shard must still be updated as the hand-checked three-element
// shard above is.
TEST(Optimizer, EveryElementOfALongShardIsUpdatedAlike) {
  for (const char* kind : {"sgd", "momentum", "adagrad", "adam", "ftrl"}) {
    SCOPED_TRACE(kind);
    OptimizerSpec spec = Spec(kind);
    spec.nesterov = true;
    spec.l1 = 0.06;
    StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
    ASSERT_TRUE(opt.ok()) << opt.status();
    Shard small(**opt, ToFloat(kVar));
    Shard large(**opt, Long(kVar));
    for (const auto* g : {&kGrad1, &kGrad2}) {
      small.Step(ToFloat(*g), kLr);
      large.Step(Long(*g), kLr);
    }
    for (size_t i = 0; i < large.var().size(); ++i) {
      ASSERT_NEAR(large.var()[i], small.var()[i % kVar.size()], kTolerance) << "var element " << i;
    }
    for (size_t s = 0; s < (*opt)->Slots().size(); ++s) {
      for (size_t i = 0; i < large.slot(s).size(); ++i) {
        ASSERT_NEAR(large.slot(s)[i], small.slot(s)[i % kVar.size()], kTolerance) << "slot " << s << " element " << i;
      }
    }
  }
}

// --- Validation --------------------------------------------------------------

TEST(Optimizer, UnknownKindIsRejectedListingTheSupportedKinds) {
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(Spec("rmsprop"));
  ASSERT_FALSE(opt.ok());
  EXPECT_EQ(opt.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(opt.status().message(),
            "optimizer.kind: unknown optimizer 'rmsprop' (supported: sgd, momentum, adagrad, adam, ftrl)");
}

TEST(Optimizer, EachOutOfRangeHyperParameterIsRejectedNamingItsField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    std::string kind;
    void (*set)(OptimizerSpec&, double);
    double value;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"sgd", [](OptimizerSpec& s, double x) { s.learning_rate = x; }, 0.0,
       "optimizer.learning_rate: must be in (0, 1e6], got 0"},
      {"adam", [](OptimizerSpec& s, double x) { s.learning_rate = x; }, 2e6,
       "optimizer.learning_rate: must be in (0, 1e6], got 2e+06"},
      {"sgd", [](OptimizerSpec& s, double x) { s.learning_rate = x; }, nan,
       "optimizer.learning_rate: must be in (0, 1e6], got nan"},
      {"momentum", [](OptimizerSpec& s, double x) { s.momentum = x; }, 1.0,
       "optimizer.momentum: must be in [0, 1), got 1"},
      {"momentum", [](OptimizerSpec& s, double x) { s.momentum = x; }, -0.1,
       "optimizer.momentum: must be in [0, 1), got -0.1"},
      {"adam", [](OptimizerSpec& s, double x) { s.beta1 = x; }, 1.5, "optimizer.beta1: must be in [0, 1), got 1.5"},
      {"adam", [](OptimizerSpec& s, double x) { s.beta1 = x; }, nan, "optimizer.beta1: must be in [0, 1), got nan"},
      {"adam", [](OptimizerSpec& s, double x) { s.beta2 = x; }, 1.0, "optimizer.beta2: must be in [0, 1), got 1"},
      {"adam", [](OptimizerSpec& s, double x) { s.beta2 = x; }, -0.5, "optimizer.beta2: must be in [0, 1), got -0.5"},
      {"adam", [](OptimizerSpec& s, double x) { s.epsilon = x; }, 0.0, "optimizer.epsilon: must be > 0, got 0"},
      {"adagrad", [](OptimizerSpec& s, double x) { s.initial_accumulator = x; }, 0.0,
       "optimizer.initial_accumulator: must be > 0, got 0"},
      {"ftrl", [](OptimizerSpec& s, double x) { s.initial_accumulator = x; }, -1.0,
       "optimizer.initial_accumulator: must be > 0, got -1"},
      {"ftrl", [](OptimizerSpec& s, double x) { s.l1 = x; }, -0.01, "optimizer.l1: must be >= 0, got -0.01"},
      {"ftrl", [](OptimizerSpec& s, double x) { s.l2 = x; }, -2.0, "optimizer.l2: must be >= 0, got -2"},
      {"ftrl", [](OptimizerSpec& s, double x) { s.lr_power = x; }, 0.5, "optimizer.lr_power: must be <= 0, got 0.5"},
  };
  for (const Case& c : cases) {
    OptimizerSpec spec = Spec(c.kind);
    c.set(spec, c.value);
    StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
    ASSERT_FALSE(opt.ok()) << c.message;
    EXPECT_EQ(opt.status().code(), StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(opt.status().message(), c.message);
  }
}

TEST(Optimizer, HyperParametersOnTheClosedEndOfTheirRangesAreAccepted) {
  OptimizerSpec momentum = Spec("momentum");
  momentum.momentum = 0.0;
  momentum.learning_rate = 1e6;
  OptimizerSpec adam = Spec("adam");
  adam.beta1 = 0.0;
  adam.beta2 = 0.0;
  OptimizerSpec ftrl = Spec("ftrl");
  ftrl.l1 = 0.0;
  ftrl.l2 = 0.0;
  ftrl.lr_power = 0.0;
  for (const OptimizerSpec& spec : {momentum, adam, ftrl}) {
    StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
    EXPECT_TRUE(opt.ok()) << spec.kind << ": " << opt.status();
  }
}

TEST(Optimizer, HyperParametersAnotherKindWouldReadAreNotChecked) {
  OptimizerSpec spec = Spec("adam");
  spec.momentum = 1.5;
  spec.initial_accumulator = 0.0;
  spec.lr_power = 1.0;
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(spec);
  EXPECT_TRUE(opt.ok()) << opt.status();
}

}  // namespace
}  // namespace cairn
