// Optimizer: the update rule a server applies to a shard when a gradient
// arrives. Its per-element state lives in named slots beside the shard
// (e.g. Adam's "m" and "v"), so that snapshots hold it like any variable.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "common/messages.h"
#include "common/status.h"

namespace cairn {

class Optimizer {
 public:
  using Vec = Eigen::Map<Eigen::VectorXf>;
  using ConstVec = Eigen::Map<const Eigen::VectorXf>;

  // InvalidArgument for an unknown kind or out-of-range hyper-parameters.
  static StatusOr<std::unique_ptr<Optimizer>> Create(const OptimizerSpec& spec);
  virtual ~Optimizer() = default;

  // Names of the per-element slots, e.g. {"m", "v"}; empty for SGD.
  virtual std::vector<std::string> SlotNames() const = 0;
  // Initial value of slot `i` (Adagrad starts its accumulator above zero).
  virtual float SlotInitialValue(size_t i) const { return 0.0f; }
  // Applies one update. `step` counts earlier updates of this shard (0 first).
  // `slots` are SlotNames().size() buffers of var's size.
  virtual void Apply(Vec var, ConstVec grad, std::vector<Vec>& slots, int64_t step) const = 0;
};

}  // namespace cairn
