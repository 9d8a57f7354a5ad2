#include "ps/in_process_store.h"

namespace cairn {

Status InProcessStore::Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                              const TrainingMode& mode) {
  for (const VariableSpec& spec : specs) RETURN_IF_ERROR(store_.Create(ShardDecl{spec, 0, spec.rows(), optimizer}));
  return Status::OK();
}

StatusOr<std::map<std::string, Tensor>> InProcessStore::Pull(const std::vector<std::string>& names) {
  std::map<std::string, Tensor> out;
  RETURN_IF_ERROR(PullInto(names, &out));
  return out;
}

Status InProcessStore::PullInto(const std::vector<std::string>& names, std::map<std::string, Tensor>* out) {
  ++pulls_;
  // The same names as the map's (every step of a training loop): the values
  // are replaced in place. Else it starts afresh.
  bool same = out->size() == names.size();
  for (size_t i = 0; same && i < names.size(); ++i) same = out->count(names[i]) == 1;
  if (!same) out->clear();
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN((*out)[name], store_.Read(name));
  }
  return Status::OK();
}

Status InProcessStore::Push(const PushBatch& batch) {
  ++pushes_;
  // Check everything before applying anything, as a server does.
  for (const auto& [name, t] : batch.gradients) RETURN_IF_ERROR(store_.CheckUpdate(name, UpdateKind::kGradient, 0, t));
  for (const auto& [name, t] : batch.assigns) RETURN_IF_ERROR(store_.CheckUpdate(name, UpdateKind::kAssign, 0, t));
  for (const auto& [name, t] : batch.assign_adds) RETURN_IF_ERROR(store_.CheckUpdate(name, UpdateKind::kAssignAdd, 0, t));
  std::vector<SparseGradient> sparse;
  for (const auto& [name, u] : batch.sparse_gradients) {
    ASSIGN_OR_RETURN(SparseTable * table, store_.FindSparse(name));
    const int64_t n = u.ids.num_elements();
    if (u.ids.dtype() != DType::kInt64 || u.ids.shape().size() != 1 || u.values.dtype() != DType::kFloat32 ||
        u.values.rank() != 2 || u.values.dim(0) != n || u.values.dim(1) != table->spec().dim) {
      return InvalidArgument("sparse gradient for '" + name + "' must be int64 ids [n] and float32 rows [n, " +
                             std::to_string(table->spec().dim) + "]");
    }
    RETURN_IF_ERROR(table->CheckGradients(u.ids.data<int64_t>(), n));
    sparse.push_back(SparseGradient{table, u.ids.data<int64_t>(), u.values.data<float>(), static_cast<size_t>(n)});
  }
  for (const auto& [name, t] : batch.gradients) {
    RETURN_IF_ERROR(store_.Apply(name, UpdateKind::kGradient, t, batch.learning_rate));
  }
  for (const auto& [name, t] : batch.assigns) RETURN_IF_ERROR(store_.Apply(name, UpdateKind::kAssign, t));
  for (const auto& [name, t] : batch.assign_adds) RETURN_IF_ERROR(store_.Apply(name, UpdateKind::kAssignAdd, t));
  for (const SparseGradient& g : sparse) {
    g.table->ApplyCheckedGradients(g.ids, g.count, g.values, batch.learning_rate);  // checked above
  }
  if (batch.train_step && !batch.global_step.empty()) store_.CountStep(batch.global_step);
  return Status::OK();
}

Status InProcessStore::CreateSparse(const std::vector<SparseTableSpec>& tables, const OptimizerSpec& optimizer) {
  for (const SparseTableSpec& t : tables) RETURN_IF_ERROR(store_.CreateSparse(SparseTableDecl{t, optimizer}));
  return Status::OK();
}

StatusOr<std::map<std::string, Tensor>> InProcessStore::SparsePull(const std::map<std::string, Tensor>& ids) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : ids) {
    ASSIGN_OR_RETURN(SparseTable * table, store_.FindSparse(name));
    if (t.dtype() != DType::kInt64 || t.shape().size() != 1) {
      return InvalidArgument("sparse pull of '" + name + "' needs int64 ids [n]");
    }
    Tensor rows = Tensor::Uninitialized(DType::kFloat32, {t.num_elements(), table->spec().dim});
    RETURN_IF_ERROR(table->Pull(t.data<int64_t>(), t.num_elements(), rows.data<float>()));
    out[name] = std::move(rows);
  }
  return out;
}

}  // namespace cairn
