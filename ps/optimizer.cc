#include "ps/optimizer.h"

#include <cmath>
#include <sstream>

#include "common/kernels/kernels.h"

namespace cairn {
namespace {

// Every Apply is one call of a kernel (common/kernels/kernels.h) over the
// whole shard or row: one virtual call per push, then vectorized loops.
// Hyper-parameters are kept as float, the shard's type, as TF's kernels do
// with T = float.

class Sgd final : public Optimizer {
 public:
  void Apply(float* var, const float* grad, int64_t n, float* const*, float lr) const override {
    kernels::SgdUpdate(var, grad, n, lr);
  }
};

// tf ApplyMomentum: accum = momentum * accum + g; var -= lr * accum, or with
// Nesterov var -= lr * (g + momentum * accum), using the updated accum.
class Momentum final : public Optimizer {
 public:
  Momentum(float momentum, bool nesterov) : momentum_(momentum), nesterov_(nesterov) {}
  void Apply(float* var, const float* grad, int64_t n, float* const* slots, float lr) const override {
    kernels::MomentumUpdate(var, grad, slots[0], n, lr, momentum_, nesterov_);
  }

 private:
  const float momentum_;
  const bool nesterov_;
};

// tf ApplyAdagrad: accum += g^2; var -= lr * g / sqrt(accum).
class Adagrad final : public Optimizer {
 public:
  explicit Adagrad(float initial_accumulator) : initial_accumulator_(initial_accumulator) {}
  void Apply(float* var, const float* grad, int64_t n, float* const* slots, float lr) const override {
    kernels::AdagradUpdate(var, grad, slots[0], n, lr);
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
  void Apply(float* var, const float* grad, int64_t n, float* const* slots, float lr) const override {
    float& beta1_power = slots[2][0];
    float& beta2_power = slots[3][0];
    const float lr_t = lr * std::sqrt(1.0f - beta2_power) / (1.0f - beta1_power);
    kernels::AdamUpdate(var, grad, slots[0], slots[1], n, lr_t, beta1_, beta2_, epsilon_);
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
// where p = lr_power; p = -0.5 takes sqrt, not pow.
class Ftrl final : public Optimizer {
 public:
  Ftrl(float initial_accumulator, float l1, float l2, float lr_power)
      : initial_accumulator_(initial_accumulator), l1_(l1), l2_(l2), lr_power_(lr_power) {}
  void Apply(float* var, const float* grad, int64_t n, float* const* slots, float lr) const override {
    kernels::FtrlUpdate(var, grad, slots[0], slots[1], n, lr, l1_, l2_, lr_power_);
  }

 private:
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
