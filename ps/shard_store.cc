#include "ps/shard_store.h"

namespace cairn {

Shape ShardInfo::shape() const {
  Shape s = spec.shape;
  if (!s.empty()) s[0] = row_end - row_begin;
  return s;
}

Status ShardStore::Create(const ShardDecl& decl, const OptimizerSpec& optimizer_spec) {
  RETURN_IF_ERROR(ValidateSpec(decl.spec));
  const VariableSpec& spec = decl.spec;
  if (decl.row_begin < 0 || decl.row_begin > decl.row_end || decl.row_end > spec.rows()) {
    return InvalidArgument("variable '" + spec.name + "': rows [" + std::to_string(decl.row_begin) + ", " +
                           std::to_string(decl.row_end) + ") are outside its " + std::to_string(spec.rows()) +
                           " rows");
  }
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = shards_.find(spec.name);
    if (it != shards_.end()) {
      const Shard& s = *it->second;
      if (s.info.spec == spec && s.info.row_begin == decl.row_begin && s.info.row_end == decl.row_end &&
          s.optimizer_spec == optimizer_spec) {
        return Status::OK();
      }
      return AlreadyExists("variable '" + spec.name + "' exists as " + s.info.spec.DebugString() + " rows [" +
                           std::to_string(s.info.row_begin) + ", " + std::to_string(s.info.row_end) +
                           ") optimizer " + s.optimizer_spec.kind + "; cannot create it as " + spec.DebugString() +
                           " rows [" + std::to_string(decl.row_begin) + ", " + std::to_string(decl.row_end) +
                           ") optimizer " + optimizer_spec.kind);
    }
  }
  auto shard = std::make_unique<Shard>();
  shard->info = ShardInfo{spec, decl.row_begin, decl.row_end};
  shard->optimizer_spec = optimizer_spec;
  ASSIGN_OR_RETURN(shard->optimizer, Optimizer::Create(optimizer_spec));
  shard->values = Tensor(spec.dtype, shard->info.shape());
  InitializeRows(spec, decl.row_begin, &shard->values);
  if (spec.trainable && spec.dtype == DType::kFloat32) {
    const auto names = shard->optimizer->SlotNames();
    for (size_t i = 0; i < names.size(); ++i) {
      Tensor slot(DType::kFloat32, shard->info.shape());
      slot.flat().setConstant(shard->optimizer->SlotInitialValue(i));
      shard->slots.push_back(std::move(slot));
    }
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  // Another request may have created it meanwhile: same rules apply.
  if (shards_.count(spec.name)) {
    lock.unlock();
    return Create(decl, optimizer_spec);
  }
  shards_.emplace(spec.name, std::move(shard));
  return Status::OK();
}

StatusOr<ShardStore::Shard*> ShardStore::Find(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = shards_.find(name);
  if (it == shards_.end()) return NotFound("variable '" + name + "' does not exist on this server");
  return it->second.get();
}

StatusOr<Tensor> ShardStore::Read(const std::string& name, ShardInfo* info) const {
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  if (info) *info = shard->info;
  std::lock_guard<std::mutex> lock(shard->mu);
  return shard->values.Clone();
}

Status ShardStore::CheckGradient(const std::string& name, const Tensor& grad) const {
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  const ShardInfo& info = shard->info;
  if (!info.spec.trainable) return FailedPrecondition("variable '" + name + "' is not trainable");
  if (grad.dtype() != DType::kFloat32 || info.spec.dtype != DType::kFloat32) {
    return InvalidArgument("gradient for '" + name + "' must be float32, got " + DTypeName(grad.dtype()));
  }
  if (grad.shape() != info.shape()) {
    return InvalidArgument("gradient for '" + name + "' has shape " + ShapeString(grad.shape()) +
                           " but the shard has shape " + ShapeString(info.shape()));
  }
  return Status::OK();
}

Status ShardStore::ApplyGradient(const std::string& name, const Tensor& grad) {
  RETURN_IF_ERROR(CheckGradient(name, grad));
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  std::lock_guard<std::mutex> lock(shard->mu);
  std::vector<Optimizer::Vec> slots;
  for (Tensor& s : shard->slots) slots.emplace_back(s.data<float>(), s.num_elements());
  shard->optimizer->Apply(shard->values.flat(), grad.flat(), slots, shard->updates);
  ++shard->updates;
  return Status::OK();
}

size_t ShardStore::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return shards_.size();
}

}  // namespace cairn
