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
// 8 bytes per slot kept at most 70% full. memory() reports both.
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

class SparseIndex;
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
  // InvalidArgument for the reserved id. A pull holds the table's shared
  // lock throughout: no update lands in the middle of it.
  Status Pull(const int64_t* ids, size_t n, float* out) const;
  // Pull in two halves, for a caller that pulls a few ids at a time: OK if
  // Pull would take these ids (none is the reserved id), and Pull of ids
  // that passed it.
  Status CheckPull(const int64_t* ids, size_t n) const;
  void PullChecked(const int64_t* ids, size_t n, float* out) const;

  // Applies one gradient row per id: grads[n * dim], ids unique. `lr` >= 0
  // replaces the optimizer's configured rate. Checked whole (as
  // CheckGradients) before any row changes.
  Status ApplyGradients(const int64_t* ids, size_t n, const float* grads, float lr = -1);
  // OK if ApplyGradients would take these ids: the table is trainable, no
  // id is reserved or repeated.
  Status CheckGradients(const int64_t* ids, size_t n) const;
  // ApplyGradients of ids that passed CheckGradients (a push checks every
  // table before it applies any).
  // A call of kParallelApplyRows ids or more is shared with another core
  // (common/parallel_for.h), in pieces of kParallelPieceRows.
  void ApplyCheckedGradients(const int64_t* ids, size_t n, const float* grads, float lr = -1);
  static constexpr size_t kParallelApplyRows = 16384;
  static constexpr size_t kParallelPieceRows = 2048;

  // The 32-bit tag the table's index keeps of an id (its home slot is the
  // tag's top bits): a mix of MixId(id) independent of ServerOfId's.
  static uint32_t IndexTag(int64_t id);

  // Rows held (touched at least once).
  int64_t rows() const;
  struct Memory {
    uint64_t payload_bytes = 0;    // ids, values and slots of the rows held
    uint64_t allocated_bytes = 0;  // record blocks and index, as allocated
  };
  Memory memory() const;

  // Every row held, sorted by id, as of the call.
  SparseRows Export() const;
  // Export in two halves, so a snapshot cut holds updates off for almost
  // nothing. CopyRecords takes the cut: it copies no row, it only records
  // how many rows there are and makes the table copy on write for them.
  // SortRecords (any thread, later) copies the records as of the cut, in
  // chunks of kCutChunkRows under the table's shared lock (pulls go on;
  // an update waits for at most one chunk's memcpy), then sorts and splits
  // them into SparseRows. Between the two, the first update of a row that
  // is not yet copied saves that row's record first (one append to a
  // chunked side log, in memory the cut's own), so the update path pays at
  // most one record's copy per row touched, never the table's. One cut is
  // pending at a time: a second CopyRecords, or an Import, first copies
  // what the pending cut still needs, under the lock. A Records dropped
  // before SortRecords ends its cut; the memory it copied goes with it.
  class Cut;
  struct Records {
    std::shared_ptr<Cut> cut;
    uint32_t rows = 0;  // at the cut
  };
  static constexpr uint32_t kCutChunkRows = 4096;
  Records CopyRecords() const;
  SparseRows SortRecords(const Records& records) const;
  // Records saved by updates ahead of the copy, over the table's lifetime
  // (for tests and benchmarks: how much copying a cut moved onto the
  // update path).
  uint64_t records_saved_on_write() const;
  // Replaces every row with `rows` (dim and slot widths checked first).
  Status Import(const SparseRows& rows);

 private:
  SparseTable(SparseTableSpec spec, OptimizerSpec optimizer_spec, std::unique_ptr<Optimizer> optimizer);

  float* Record(uint32_t row) const;  // requires mu_ (either way)
  uint32_t FindRow(int64_t id) const;  // requires mu_ (either way): id's row, or UINT32_MAX
  // Visits ids with their cache misses overlapped (sparse_table.cc).
  template <typename Locate, typename Visit>
  void Pipelined(const int64_t* ids, size_t n, Locate locate, Visit visit) const;
  void PrefetchRecord(const float* record) const;
  void PrefetchValues(const float* record) const;
  uint32_t NewRow(int64_t id);        // requires mu_ exclusively: a record with initial values and slots
  // ApplyCheckedGradients of kParallelApplyRows or more: requires mu_ exclusively.
  void ApplyInParallelLocked(const int64_t* ids, size_t n, const float* grads, float rate, Cut* cut);
  // Copies chunk `chunk` of `cut` from the live records unless done:
  // requires mu_ (either way) and, under a shared lock, cut's copy mutex.
  void CopyChunk(Cut& cut, uint32_t chunk) const;
  // Copies every chunk the pending cut still needs: requires mu_ exclusively.
  void CopyPendingLocked() const;

  const SparseTableSpec spec_;
  const OptimizerSpec optimizer_spec_;
  const std::unique_ptr<Optimizer> optimizer_;
  std::vector<int32_t> slot_offsets_;  // floats from a record's start; values start at 2
  int32_t stride_ = 0;                 // floats per record, even (the id stays 8-byte aligned)
  std::vector<float> initial_record_;  // a new record's slot part, copied in

  mutable std::shared_mutex mu_;
  // Taken by an update while it waits for mu_ exclusively, and by a cut's
  // copier before each chunk's shared lock: the rwlock prefers readers, so
  // without it a copier taking chunk after chunk would hold updates off
  // for the whole copy.
  mutable std::mutex turn_;
  std::unique_ptr<SparseIndex> index_;              // guarded by mu_: id -> row
  std::vector<std::unique_ptr<float[]>> blocks_;  // guarded by mu_: kRowsPerBlock records each
  uint32_t rows_ = 0;                         // guarded by mu_
  mutable std::weak_ptr<Cut> pending_;        // guarded by mu_: the cut not yet copied whole
  mutable uint64_t saved_on_write_ = 0;       // guarded by mu_
};

}  // namespace cairn
