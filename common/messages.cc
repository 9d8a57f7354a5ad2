#include "common/messages.h"

namespace cairn {

Status WireStatus::ToStatus() const {
  if (code == 0) return Status::OK();
  if (code < 0 || code > static_cast<int32_t>(StatusCode::kPermissionDenied)) {
    return Internal("peer sent unknown status code " + std::to_string(code) + ": " + message);
  }
  return Status(static_cast<StatusCode>(code), message);
}

const char* ConsistencyName(Consistency c) {
  switch (c) {
    case Consistency::kAsync: return "async";
    case Consistency::kSync: return "sync";
    case Consistency::kSsp: return "ssp";
  }
  return "invalid";
}
const char* MissingWorkersName(MissingWorkers m) { return m == MissingWorkers::kContinue ? "continue" : "fail"; }

StatusOr<Consistency> ParseConsistency(const std::string& name) {
  if (name == "async") return Consistency::kAsync;
  if (name == "sync") return Consistency::kSync;
  if (name == "ssp") return Consistency::kSsp;
  return InvalidArgument("unknown consistency '" + name + "' (async, sync or ssp)");
}

StatusOr<MissingWorkers> ParseMissingWorkers(const std::string& name) {
  if (name == "fail") return MissingWorkers::kFail;
  if (name == "continue") return MissingWorkers::kContinue;
  return InvalidArgument("unknown missing_workers '" + name + "' (fail or continue)");
}

const char* UpdateKindName(UpdateKind kind) {
  switch (kind) {
    case UpdateKind::kGradient: return "gradient";
    case UpdateKind::kAssign: return "assign";
    case UpdateKind::kAssignAdd: return "assign_add";
  }
  return "invalid";
}

Status ValidateTensorDesc(const TensorDesc& d, uint64_t data_len) {
  if (static_cast<uint8_t>(d.update) > static_cast<uint8_t>(UpdateKind::kAssignAdd)) {
    return InvalidArgument("tensor '" + d.name + "' has an invalid update kind");
  }
  if (!IsValidDType(static_cast<uint8_t>(d.dtype))) return InvalidArgument("tensor '" + d.name + "' has an invalid dtype");
  Status s = ValidateShape(d.shape, d.dtype, data_len);
  if (!s.ok()) return s.WithContext("tensor '" + d.name + "'");
  const uint64_t expected = static_cast<uint64_t>(NumElements(d.shape)) * DTypeSize(d.dtype);
  if (d.bytes != expected) {
    return InvalidArgument("tensor '" + d.name + "' declares " + std::to_string(d.bytes) + " bytes but shape " +
                           ShapeString(d.shape) + " needs " + std::to_string(expected));
  }
  if (d.offset > data_len || d.bytes > data_len - d.offset) {
    return InvalidArgument("tensor '" + d.name + "' lies outside the frame's data section");
  }
  if (d.offset % DTypeSize(d.dtype) != 0) return InvalidArgument("tensor '" + d.name + "' is misaligned");
  if (d.row_begin < 0) return InvalidArgument("tensor '" + d.name + "' has a negative row_begin");
  return Status::OK();
}

Status ValidateSparseDesc(const SparseDesc& d, uint64_t data_len, bool with_values, const SparseLimits& limits) {
  const std::string table = "sparse table '" + d.table + "'";
  if (d.count > limits.max_ids_per_request) {
    return InvalidArgument(table + ": " + std::to_string(d.count) + " ids exceed the limit of " +
                           std::to_string(limits.max_ids_per_request) + " per request");
  }
  if (d.dim < 1 || d.dim > limits.max_dim) {
    return InvalidArgument(table + ": dim " + std::to_string(d.dim) + " is outside [1, " +
                           std::to_string(limits.max_dim) + "]");
  }
  const uint64_t id_bytes = d.count * sizeof(int64_t);
  if (d.ids_offset > data_len || id_bytes > data_len - d.ids_offset) {
    return InvalidArgument(table + ": " + std::to_string(d.count) + " ids lie outside the frame's data section");
  }
  if (d.ids_offset % sizeof(int64_t) != 0) return InvalidArgument(table + ": ids are misaligned");
  if (with_values) {
    const uint64_t value_bytes = d.count * static_cast<uint64_t>(d.dim) * sizeof(float);
    if (d.values_offset > data_len || value_bytes > data_len - d.values_offset) {
      return InvalidArgument(table + ": " + std::to_string(d.count) + " x " + std::to_string(d.dim) +
                             " values lie outside the frame's data section");
    }
    if (d.values_offset % sizeof(float) != 0) return InvalidArgument(table + ": values are misaligned");
  }
  return Status::OK();
}

Tensor ViewTensor(const TensorDesc& desc, const std::shared_ptr<uint8_t>& payload, uint8_t* data) {
  return Tensor::View(desc.dtype, desc.shape, payload, data + desc.offset);
}

}  // namespace cairn
