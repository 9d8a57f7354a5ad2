#include "common/optimizer_spec.h"

namespace cairn {

StatusOr<SlotTable> SlotTableOf(const OptimizerSpec& spec) {
  const auto f = [](double x) { return static_cast<float>(x); };
  if (spec.kind == "sgd") return SlotTable{"SGD", {}};
  if (spec.kind == "momentum") return SlotTable{"Momentum", {{"momentum", false, 0.0f}}};
  if (spec.kind == "adagrad") return SlotTable{"Adagrad", {{"accumulator", false, f(spec.initial_accumulator)}}};
  if (spec.kind == "adam") {
    // The beta powers start at beta1/beta2 and are multiplied after each step.
    return SlotTable{"Adam",
                     {{"m", false, 0.0f}, {"v", false, 0.0f}, {"beta1_power", true, f(spec.beta1)},
                      {"beta2_power", true, f(spec.beta2)}}};
  }
  if (spec.kind == "ftrl") {
    return SlotTable{"Ftrl", {{"accumulator", false, f(spec.initial_accumulator)}, {"linear", false, 0.0f}}};
  }
  return InvalidArgument("optimizer.kind: unknown optimizer '" + spec.kind +
                         "' (supported: sgd, momentum, adagrad, adam, ftrl)");
}

}  // namespace cairn
