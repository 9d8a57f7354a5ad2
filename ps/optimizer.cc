#include "ps/optimizer.h"

#include <cassert>
#include <cmath>
#include <sstream>

namespace cairn {
namespace {

// Every Apply is a handful of whole-shard Eigen array expressions: one virtual
// call per push, then vectorized loops over the shard. Hyper-parameters are
// kept as float, the shard's type, as TF's kernels do with T = float.

class Sgd final : public Optimizer {
 public:
  void Apply(Vec var, ConstVec grad, std::vector<Vec>&, float lr) const override { var -= lr * grad; }
};

// tf ApplyMomentum: accum = momentum * accum + g; var -= lr * accum, or with
// Nesterov var -= lr * (g + momentum * accum), using the updated accum.
class Momentum final : public Optimizer {
 public:
  Momentum(float momentum, bool nesterov) : momentum_(momentum), nesterov_(nesterov) {}
  void Apply(Vec var, ConstVec grad, std::vector<Vec>& slots, float lr) const override {
    assert(slots.size() == 1);
    auto accum = slots[0].array();
    accum = momentum_ * accum + grad.array();
    if (nesterov_) {
      var.array() -= lr * (grad.array() + momentum_ * accum);
    } else {
      var.array() -= lr * accum;
    }
  }

 private:
  const float momentum_;
  const bool nesterov_;
};

// tf ApplyAdagrad: accum += g^2; var -= lr * g / sqrt(accum).
class Adagrad final : public Optimizer {
 public:
  explicit Adagrad(float initial_accumulator) : initial_accumulator_(initial_accumulator) {}
  void Apply(Vec var, ConstVec grad, std::vector<Vec>& slots, float lr) const override {
    assert(slots.size() == 1);
    auto accum = slots[0].array();
    accum += grad.array().square();
    var.array() -= lr * grad.array() * accum.rsqrt();
  }

 private:
  const float initial_accumulator_;
};

// tf AdamOptimizer over ApplyAdam. The beta powers are per-shard scalar slots
// that start at beta1/beta2 and are multiplied after each step, as TF's
// non-slot accumulators are; keeping them beside the shard lets a snapshot
// restore a shard's bias correction exactly.
class Adam final : public Optimizer {
 public:
  Adam(float beta1, float beta2, float epsilon) : beta1_(beta1), beta2_(beta2), epsilon_(epsilon) {}
  void Apply(Vec var, ConstVec grad, std::vector<Vec>& slots, float lr) const override {
    assert(slots.size() == 4 && slots[2].size() == 1 && slots[3].size() == 1);
    auto m = slots[0].array();
    auto v = slots[1].array();
    float& beta1_power = slots[2](0);
    float& beta2_power = slots[3](0);
    const float lr_t = lr * std::sqrt(1.0f - beta2_power) / (1.0f - beta1_power);
    // TF's kernel form of m = beta1 * m + (1 - beta1) * g (and likewise v).
    m += (grad.array() - m) * (1.0f - beta1_);
    v += (grad.array().square() - v) * (1.0f - beta2_);
    var.array() -= lr_t * m / (v.sqrt() + epsilon_);
    beta1_power *= beta1_;
    beta2_power *= beta2_;
  }

 private:
  const float beta1_, beta2_, epsilon_;
};

// tf ApplyFtrl (FTRL-Proximal):
//   accum_new = accum + g^2
//   linear   += g - (accum_new^-p - accum^-p) / lr * var
//   quadratic = accum_new^-p / lr + 2 * l2
//   var       = |linear| > l1 ? (sign(linear) * l1 - linear) / quadratic : 0
//   accum     = accum_new
// where p = lr_power. Like TF, accum_new is an expression evaluated where it is
// used rather than a shard-sized temporary, and p = -0.5 takes sqrt, not pow.
class Ftrl final : public Optimizer {
 public:
  Ftrl(float initial_accumulator, float l1, float l2, float lr_power)
      : initial_accumulator_(initial_accumulator), l1_(l1), l2_(l2), lr_power_(lr_power) {}
  void Apply(Vec var, ConstVec grad, std::vector<Vec>& slots, float lr) const override {
    assert(slots.size() == 2);
    if (lr_power_ == -0.5f) {
      Update(var, grad, slots[0], slots[1], lr, [](const auto& x) { return x.sqrt(); });
    } else {
      const float exponent = -lr_power_;
      Update(var, grad, slots[0], slots[1], lr, [exponent](const auto& x) { return x.pow(exponent); });
    }
  }

 private:
  // `power(x)` is x^-lr_power as an Eigen array expression.
  template <class Power>
  void Update(Vec var, ConstVec grad, Vec accum_vec, Vec linear_vec, float lr, Power power) const {
    const auto g = grad.array();
    auto accum = accum_vec.array();
    auto linear = linear_vec.array();
    // accum_new and quadratic are lazy expressions over the old accum: both
    // must be evaluated before accum itself is updated, last.
    const auto accum_new = accum + g.square();
    linear += g - (power(accum_new) - power(accum)) / lr * var.array();
    const auto quadratic = power(accum_new) / lr + 2.0f * l2_;
    var.array() = (linear.abs() > l1_).select((linear.sign() * l1_ - linear) / quadratic, 0.0f);
    accum += g.square();
  }

  const float initial_accumulator_, l1_, l2_, lr_power_;
};

std::string Format(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

Status CheckUnitInterval(const char* field, double x) {
  if (x >= 0.0 && x < 1.0) return Status::OK();
  return InvalidArgument(std::string("optimizer.") + field + ": must be in [0, 1), got " + Format(x));
}

Status CheckPositive(const char* field, double x) {
  if (x > 0.0) return Status::OK();
  return InvalidArgument(std::string("optimizer.") + field + ": must be > 0, got " + Format(x));
}

Status CheckNonNegative(const char* field, double x) {
  if (x >= 0.0) return Status::OK();
  return InvalidArgument(std::string("optimizer.") + field + ": must be >= 0, got " + Format(x));
}

// Only the fields the chosen kind reads are checked: a spec for Adam keeps
// its unused momentum default, and that must not make it invalid.
Status Validate(const OptimizerSpec& spec) {
  if (!(spec.learning_rate > 0.0 && spec.learning_rate <= 1e6)) {
    return InvalidArgument("optimizer.learning_rate: must be in (0, 1e6], got " + Format(spec.learning_rate));
  }
  if (spec.kind == "momentum") return CheckUnitInterval("momentum", spec.momentum);
  if (spec.kind == "adagrad") return CheckPositive("initial_accumulator", spec.initial_accumulator);
  if (spec.kind == "adam") {
    RETURN_IF_ERROR(CheckUnitInterval("beta1", spec.beta1));
    RETURN_IF_ERROR(CheckUnitInterval("beta2", spec.beta2));
    return CheckPositive("epsilon", spec.epsilon);
  }
  if (spec.kind == "ftrl") {
    RETURN_IF_ERROR(CheckPositive("initial_accumulator", spec.initial_accumulator));
    RETURN_IF_ERROR(CheckNonNegative("l1", spec.l1));
    RETURN_IF_ERROR(CheckNonNegative("l2", spec.l2));
    if (!(spec.lr_power <= 0.0)) {
      return InvalidArgument("optimizer.lr_power: must be <= 0, got " + Format(spec.lr_power));
    }
    return Status::OK();
  }
  if (spec.kind == "sgd") return Status::OK();
  return InvalidArgument("optimizer.kind: unknown optimizer '" + spec.kind +
                         "' (supported: sgd, momentum, adagrad, adam, ftrl)");
}

}  // namespace

StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(const OptimizerSpec& spec) {
  RETURN_IF_ERROR(Validate(spec));
  const auto f = [](double x) { return static_cast<float>(x); };
  std::unique_ptr<Optimizer> optimizer;
  if (spec.kind == "momentum") {
    optimizer = std::make_unique<Momentum>(f(spec.momentum), spec.nesterov);
  } else if (spec.kind == "adagrad") {
    optimizer = std::make_unique<Adagrad>(f(spec.initial_accumulator));
  } else if (spec.kind == "adam") {
    optimizer = std::make_unique<Adam>(f(spec.beta1), f(spec.beta2), f(spec.epsilon));
  } else if (spec.kind == "ftrl") {
    optimizer = std::make_unique<Ftrl>(f(spec.initial_accumulator), f(spec.l1), f(spec.l2), f(spec.lr_power));
  } else {
    optimizer = std::make_unique<Sgd>();  // Validate() accepted the kind
  }
  ASSIGN_OR_RETURN(optimizer->table_, SlotTableOf(spec));
  return optimizer;
}

}  // namespace cairn
