// ShardInfo and ShardCopy: what one server holds of a variable, and a copy
// of it with its optimizer state — the unit a snapshot writes and a restore
// puts back.
#pragma once

#include <cstdint>
#include <vector>

#include "common/optimizer_spec.h"
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

}  // namespace cairn
