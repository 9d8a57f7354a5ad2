// SparseTable: one server's part of a sparse embedding table — the rows of
// the ids routed to it (ServerOfId), each `dim` float32 values plus that
// row's optimizer slots, created by the first update that touches them.
//
// Rows a server has never updated hold their initial values
// (InitializeSparseRow: a pure function of table seed and id), and a pull of
// such an id returns exactly those without creating anything: only touched
// rows take memory, and a row's first value never depends on which server
// holds it or when it was first read.
//
// Optimizers are per row and lazy: SGD, Momentum, Adagrad (per-coordinate
// accumulator), Adam (per-row beta powers, so each row's bias correction
// counts its own updates, like TF's LazyAdam and PyTorch's SparseAdam) and
// FTRL-Proximal (per-coordinate accumulator n and linear z). They are the
// dense optimizers (ps/optimizer.h) applied to one row at a time, so a row's
// update is bit-identical to the dense update of a one-row variable with the
// same state. Slots are named like the dense ones:
// "<table>/<Optimizer>/<slot>", e.g. "emb/user/Adagrad/accumulator".
//
// Memory: each row is one record [id | values | slots] in blocks of 64Ki
// records allocated as rows are created, plus an open-addressing index of
// 12 bytes per slot kept at most 70% full. memory() reports both.
//
// Thread-safe: pulls share the table's lock, updates and exports hold it
// alone. A failed call changes nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/optimizer_spec.h"
#include "common/snapshot/shard_copy.h"
#include "common/sparse_spec.h"
#include "common/status.h"
#include "ps/optimizer.h"

namespace cairn {

// SparseRows (every row of a table, sorted by id) lives with the snapshot
// format: common/snapshot/shard_copy.h.

class SparseTable;

// One table's rows of a push, viewing the request's bytes (not owned).
struct SparseGradient {
  SparseTable* table = nullptr;
  const int64_t* ids = nullptr;
  const float* values = nullptr;  // count x table->spec().dim
  size_t count = 0;
};

class SparseTable {
 public:
  // InvalidArgument for a bad spec or optimizer, naming the field.
  static StatusOr<std::unique_ptr<SparseTable>> Create(const SparseTableSpec& spec, const OptimizerSpec& optimizer);
  ~SparseTable();

  const SparseTableSpec& spec() const { return spec_; }
  const OptimizerSpec& optimizer_spec() const { return optimizer_spec_; }
  // The optimizer's slots (empty for SGD) and their full names.
  const std::vector<SlotDef>& slots() const { return optimizer_->Slots(); }
  std::string SlotName(size_t slot) const;
  // Floats per row of `slot`: dim, or 1 for a per-row scalar (Adam's beta powers).
  int32_t SlotWidth(size_t slot) const;

  // The values of `n` ids (any order, repeats allowed) into out[n * dim].
  // InvalidArgument for the reserved id.
  Status Pull(const int64_t* ids, size_t n, float* out) const;

  // Applies one gradient row per id: grads[n * dim], ids unique. `lr` >= 0
  // replaces the optimizer's configured rate. Checked whole (as
  // CheckGradients) before any row changes.
  Status ApplyGradients(const int64_t* ids, size_t n, const float* grads, float lr = -1);
  // OK if ApplyGradients would take these ids: the table is trainable, no
  // id is reserved or repeated.
  Status CheckGradients(const int64_t* ids, size_t n) const;
  // ApplyGradients of ids that passed CheckGradients (a push checks every
  // table before it applies any).
  void ApplyCheckedGradients(const int64_t* ids, size_t n, const float* grads, float lr = -1);

  // Rows held (touched at least once).
  int64_t rows() const;
  struct Memory {
    uint64_t payload_bytes = 0;    // ids, values and slots of the rows held
    uint64_t allocated_bytes = 0;  // record blocks and index, as allocated
  };
  Memory memory() const;

  // Every row held, sorted by id. The lock is held only to copy the records;
  // sorting and splitting them runs after it is released.
  SparseRows Export() const;
  // Export in two halves, so a snapshot cut holds updates off only for the
  // copy: CopyRecords copies the records under the lock (memcpy of the
  // blocks), SortRecords sorts and splits them into SparseRows without it.
  // The copy goes into a new buffer, not zero-filled first: the cut costs
  // one memcpy into fresh memory. (Huge pages, which the dense copies ask
  // for, made this first touch 4x slower in a VM here; and no copy is kept
  // between snapshots, as the dense shards' are: a sparse table is often
  // most of a server's memory.)
  struct Records {
    std::shared_ptr<float[]> buffer;  // rows x stride floats, in creation order
    uint32_t rows = 0;
    const float* data() const { return buffer.get(); }
  };
  Records CopyRecords() const;
  SparseRows SortRecords(const Records& records) const;
  // Replaces every row with `rows` (dim and slot widths checked first).
  Status Import(const SparseRows& rows);

 private:
  class Index;
  SparseTable(SparseTableSpec spec, OptimizerSpec optimizer_spec, std::unique_ptr<Optimizer> optimizer);

  float* Record(uint32_t row) const;  // requires mu_ (either way)
  void PrefetchRecord(const float* record) const;
  void PrefetchValues(const float* record) const;
  uint32_t NewRow(int64_t id);        // requires mu_ exclusively: a record with initial values and slots

  const SparseTableSpec spec_;
  const OptimizerSpec optimizer_spec_;
  const std::unique_ptr<Optimizer> optimizer_;
  std::vector<int32_t> slot_offsets_;  // floats from a record's start; values start at 2
  int32_t stride_ = 0;                 // floats per record, even (the id stays 8-byte aligned)
  std::vector<float> initial_record_;  // a new record's slot part, copied in

  mutable std::shared_mutex mu_;
  std::unique_ptr<Index> index_;              // guarded by mu_: id -> row
  std::vector<std::unique_ptr<float[]>> blocks_;  // guarded by mu_: kRowsPerBlock records each
  uint32_t rows_ = 0;                         // guarded by mu_
};

}  // namespace cairn
