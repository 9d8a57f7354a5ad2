#include "ps/in_process_store.h"

namespace cairn {

Status InProcessStore::Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                              const TrainingMode& mode) {
  for (const VariableSpec& spec : specs) RETURN_IF_ERROR(store_.Create(ShardDecl{spec, 0, spec.rows(), optimizer}));
  return Status::OK();
}

StatusOr<std::map<std::string, Tensor>> InProcessStore::Pull(const std::vector<std::string>& names) {
  ++pulls_;
  std::map<std::string, Tensor> out;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(out[name], store_.Read(name));
  }
  return out;
}

Status InProcessStore::Push(const PushBatch& batch) {
  ++pushes_;
  // Check everything before applying anything, as a server does.
  for (const auto& [name, t] : batch.gradients) RETURN_IF_ERROR(store_.CheckUpdate(name, UpdateKind::kGradient, 0, t));
  for (const auto& [name, t] : batch.assigns) RETURN_IF_ERROR(store_.CheckUpdate(name, UpdateKind::kAssign, 0, t));
  for (const auto& [name, t] : batch.assign_adds) RETURN_IF_ERROR(store_.CheckUpdate(name, UpdateKind::kAssignAdd, 0, t));
  for (const auto& [name, t] : batch.gradients) {
    RETURN_IF_ERROR(store_.Apply(name, UpdateKind::kGradient, t, batch.learning_rate));
  }
  for (const auto& [name, t] : batch.assigns) RETURN_IF_ERROR(store_.Apply(name, UpdateKind::kAssign, t));
  for (const auto& [name, t] : batch.assign_adds) RETURN_IF_ERROR(store_.Apply(name, UpdateKind::kAssignAdd, t));
  if (batch.train_step && !batch.global_step.empty()) store_.CountStep(batch.global_step);
  return Status::OK();
}

}  // namespace cairn
