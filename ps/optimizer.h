// Optimizer: the update rule a server applies to a shard when a gradient
// arrives. Its per-element state lives in named slots beside the shard
// (e.g. Adam's "m" and "v"), so that snapshots hold it like any variable.
// A slot's full name is "<variable>/<Name()>/<slot>", e.g. "dense/W/Adam/m".
//
// Formulas follow TensorFlow 1.x's training ops (ApplyMomentum, ApplyAdagrad,
// ApplyAdam, ApplyFtrl), so results can be checked against them by hand.
// Optimizers are immutable after creation and may be shared across threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/optimizer_spec.h"
#include "common/status.h"

namespace cairn {

class Optimizer {
 public:
  // InvalidArgument for an unknown kind or out-of-range hyper-parameters,
  // naming the field ("optimizer.beta1: must be in [0, 1)").
  static StatusOr<std::unique_ptr<Optimizer>> Create(const OptimizerSpec& spec);
  virtual ~Optimizer() = default;

  // "SGD", "Momentum", "Adagrad", "Adam" or "Ftrl": the middle part of slot
  // names. From the slot table (common/optimizer_spec.h), like Slots().
  const char* Name() const { return table_.name.c_str(); }
  // The slots this optimizer keeps per shard, in the order Apply receives
  // them: at most kMaxSlots.
  static constexpr size_t kMaxSlots = 8;
  const std::vector<SlotDef>& Slots() const { return table_.slots; }
  // Applies one update with learning rate `lr` to var[0, n) given grad[0, n).
  // slots[i] holds Slots()[i]: n floats, or 1 for a scalar slot. The arrays
  // may lie at any address: the elementwise kernels (common/kernels/kernels.h)
  // round the same at every alignment and CPU level, so a sparse row updated
  // in place matches a dense variable's row bit for bit.
  virtual void Apply(float* var, const float* grad, int64_t n, float* const* slots, float lr) const = 0;

 private:
  SlotTable table_;  // set by Create
};

}  // namespace cairn
