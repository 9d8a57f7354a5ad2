// ShardInfo and ShardCopy: what one server holds of a variable, and a copy
// of it with its optimizer state — the unit a snapshot writes and a restore
// puts back. SparseRows and SparseCopy: the same for one server's part of a
// sparse table (ps/sparse_table.h).
#pragma once

#include <cstdint>
#include <vector>

#include "common/optimizer_spec.h"
#include "common/sparse_spec.h"
#include "common/tensor.h"
#include "common/variable_spec.h"

namespace cairn {

// Rows [row_begin, row_end) of a variable.
struct ShardInfo {
  VariableSpec spec;
  int64_t row_begin = 0;
  int64_t row_end = 0;
  // The shard's own shape: spec.shape with row_end - row_begin rows.
  Shape shape() const {
    Shape s = spec.shape;
    if (!s.empty()) s[0] = row_end - row_begin;
    return s;
  }
};

// A copy of one shard with its optimizer state. slots[i] belongs to
// slot_defs[i]; per-element slots have the shard's shape, scalar slots
// shape [1].
struct ShardCopy {
  ShardInfo info;
  OptimizerSpec optimizer;          // meaningful for trainable shards only
  std::vector<SlotDef> slot_defs;   // empty for non-trainable shards
  Tensor values;
  std::vector<Tensor> slots;
};

// Rows of a sparse table (or of one server's part of it), sorted by id:
// what a snapshot writes and a restore reads.
struct SparseRows {
  int32_t dim = 0;
  std::vector<int64_t> ids;                // sorted, unique
  std::vector<float> values;               // ids.size() x dim
  std::vector<std::vector<float>> slots;   // per optimizer slot: ids.size() x its width (dim, or 1)
  size_t size() const { return ids.size(); }
};

// One server's part of a sparse table with its optimizer state. rows.slots[k]
// belongs to slot_defs[k] and is one float per row for a scalar slot
// (Adam's per-row beta powers), dim floats per row otherwise.
struct SparseCopy {
  SparseTableSpec spec;
  OptimizerSpec optimizer;         // meaningful for trainable tables only
  std::vector<SlotDef> slot_defs;  // short names, as in a ShardCopy ("accumulator")
  SparseRows rows;
};

// Floats per row of slot `def` of a table of `dim`.
inline int32_t SparseSlotWidth(const SlotDef& def, int32_t dim) { return def.scalar ? 1 : dim; }

}  // namespace cairn
