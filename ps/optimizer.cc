#include "ps/optimizer.h"

namespace cairn {
namespace {

class Sgd final : public Optimizer {
 public:
  explicit Sgd(float lr) : lr_(lr) {}
  std::vector<std::string> SlotNames() const override { return {}; }
  void Apply(Vec var, ConstVec grad, std::vector<Vec>&, int64_t) const override { var -= lr_ * grad; }

 private:
  const float lr_;
};

}  // namespace

StatusOr<std::unique_ptr<Optimizer>> Optimizer::Create(const OptimizerSpec& spec) {
  if (!(spec.learning_rate > 0.0) || spec.learning_rate > 1e6) {
    return InvalidArgument("optimizer learning_rate must be in (0, 1e6], got " + std::to_string(spec.learning_rate));
  }
  if (spec.kind == "sgd") return std::unique_ptr<Optimizer>(new Sgd(static_cast<float>(spec.learning_rate)));
  return InvalidArgument("unknown optimizer '" + spec.kind + "' (supported: sgd)");
}

}  // namespace cairn
