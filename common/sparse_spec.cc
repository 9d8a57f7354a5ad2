#include "common/sparse_spec.h"

#include <sstream>

namespace cairn {

std::string SparseTableSpec::DebugString() const {
  std::ostringstream os;
  os << name << " dim " << dim << " " << InitKindName(init.kind) << "(seed=" << init.seed << ")"
     << (trainable ? " trainable" : " non-trainable");
  return os.str();
}

Status ValidateSparseSpec(const SparseTableSpec& spec, const SparseLimits& limits) {
  if (spec.name.empty()) return InvalidArgument("sparse table name is empty");
  if (spec.name.size() > limits.max_name_bytes) {
    return InvalidArgument("sparse table name of " + std::to_string(spec.name.size()) + " bytes exceeds " +
                           std::to_string(limits.max_name_bytes));
  }
  for (unsigned char c : spec.name) {
    if (c < 0x21 || c > 0x7e) return InvalidArgument("sparse table name has non-printable characters");
  }
  const std::string table = "sparse table '" + spec.name + "'";
  if (spec.dim < 1 || spec.dim > limits.max_dim) {
    return InvalidArgument(table + ": dim must be in [1, " + std::to_string(limits.max_dim) + "], got " +
                           std::to_string(spec.dim));
  }
  switch (spec.init.kind) {
    case InitKind::kZeros:
    case InitKind::kOnes:
    case InitKind::kConstant:
    case InitKind::kUniform:
    case InitKind::kNormal:
    case InitKind::kTruncatedNormal:
      return Status::OK();
    case InitKind::kGlorotUniform:
    case InitKind::kGlorotNormal:
      return InvalidArgument(table + ": initializer " + InitKindName(spec.init.kind) +
                             " needs a fan-in a sparse table does not have (use uniform, normal or truncated_normal)");
  }
  return InvalidArgument(table + " has an invalid initializer");
}

void InitializeSparseRow(const SparseTableSpec& spec, int64_t id, float* row) {
  // Element j of row `id` is element (MixId(id) + j) of a counter-based
  // stream: any row is produced without producing the others.
  VariableSpec as_dense;
  as_dense.init = spec.init;
  const uint64_t first = MixId(id) ^ 0x5851f42d4c957f2dULL;  // apart from ServerOfId's use of MixId
  for (int32_t j = 0; j < spec.dim; ++j) row[j] = static_cast<float>(InitialElement(as_dense, first + j));
}

}  // namespace cairn
