// The kernels behind a Graph's ops: forward values and reverse-mode
// gradients, on Eigen. Stateless; Session decides what runs when.
#pragma once

#include <memory>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "worker/graph.h"

namespace cairn {

// The value of `node` from its inputs' values (in node.inputs order).
// Placeholders, constants, variables and Minimize are not computed here.
// InvalidArgument (naming the node) for runtime shape or label errors.
StatusOr<Tensor> ComputeForward(const Node& node, const std::vector<const Tensor*>& inputs);

// Given d(loss)/d(output), adds d(loss)/d(input i) into (*input_grads)[i]
// for every differentiable input (an empty Tensor there is treated as zero
// and replaced). Non-differentiable inputs (labels, a dropout's seed) are
// left alone. With `wanted` (one flag per input; empty: all wanted), an
// input whose flag is false may be left alone too: its gradient is not
// computed (a matrix multiply's placeholder side, say).
Status ComputeBackward(const Node& node, const std::vector<const Tensor*>& inputs, const Tensor& output,
                       const Tensor& grad, std::vector<Tensor>* input_grads, const std::vector<bool>& wanted = {});

// True if gradients flow through this op to its inputs. EmbeddingLookup
// and EmbeddingBag are differentiable, but not through ComputeForward and
// ComputeBackward: their gradient goes to table rows (EmbeddingBackward).
bool IsDifferentiable(OpType op);

// --- Sparse tables -------------------------------------------------------------
//
// A Run reads each sparse table once: the ids of every lookup and bag of it
// (AppendLookupIds), deduplicated in the order first read (ReadRows), are
// pulled together; lookups then gather from those rows, and their gradients
// are summed into rows aligned with the same ids. Nothing is ever the size
// of the table.

// id -> row of a list of unique ids, by open addressing. (A sort of the
// ids and a binary search per read, which this replaced, took a third of a
// wide & deep step.)
class IdRows {
 public:
  // Deduplicates `ids`; unique() holds each once, in the order first seen.
  explicit IdRows(const std::vector<int64_t>& ids);
  const Tensor& unique() const { return unique_; }
  int64_t Find(int64_t id) const;  // its row in unique(), or -1
 private:
  Tensor unique_;
  std::vector<int64_t> keys_;
  std::vector<int32_t> rows_;  // -1: an empty slot
  size_t mask_ = 0;
};

// One Run's rows of a sparse table.
struct TableRows {
  Tensor ids;   // int64 [u]: every id the Run's lookups of the table read, once, in the order first read
  Tensor rows;  // float32 [u, dim]: their values as pulled
  std::shared_ptr<const IdRows> index;  // ids' rows (ReadRows sets both)
};

// The TableRows of a Run that reads `ids` (repeats allowed), rows not yet pulled.
TableRows ReadRows(const std::vector<int64_t>& ids, int32_t dim);

// A sparse table's gradient over one Run's backward pass, aligned with its
// TableRows::ids.
struct TableGradient {
  Tensor rows;                   // float32 [u, dim], summed over every lookup of the table
  std::vector<uint8_t> touched;  // [u]: 1 for each row a differentiated lookup read
};

// Appends the ids an EmbeddingLookup or EmbeddingBag node reads (`ids`, the
// value of its ids input) to *out. A bag's negative ids ("no id") are
// skipped; a lookup's are InvalidArgument naming the node.
Status AppendLookupIds(const Node& node, const Tensor& ids, std::vector<int64_t>* out);

// The value of an EmbeddingLookup or EmbeddingBag node: its ids' rows from
// `table`, which must hold every id it reads (Internal otherwise).
StatusOr<Tensor> EmbeddingForward(const Node& node, const TableRows& table, const Tensor& ids);
// Given d(loss)/d(output), adds d(loss)/d(row) into `into` for each row the
// node read, in the order of the ids (so repeated runs sum identically),
// and marks those rows touched. `into` must be sized for `table`.
void EmbeddingBackward(const Node& node, const TableRows& table, const Tensor& ids, const Tensor& grad,
                       TableGradient* into);

}  // namespace cairn
