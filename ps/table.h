// Table: how a server's parts reach the variables it holds. Connections,
// dispatch, the data path, the snapshot writer and restore see only this
// interface; what a table keeps and how is its own business.
//
// The first implementation is the dense row-block shard store (ShardStore:
// one contiguous buffer per shard, rows [row_begin, row_end) of a
// variable). A sparse embedding table (id -> row, created on first touch)
// is the second; a server holding both routes by variable name through a
// table that holds tables, behind this same interface.
//
// Contract shared by every implementation:
//   - Thread-safe. Pulls and updates of different variables run at once;
//     one variable's update is atomic with respect to its pulls.
//   - Updates that touch several variables (one push, one sync step) run
//     inside an UpdateScope; Export waits for those scopes and holds new
//     ones off, so a snapshot is one consistent cut.
//   - A failed call changes nothing. Errors name the variable.
#pragma once

#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/snapshot/shard_copy.h"
#include "common/status.h"
#include "common/tensor.h"
#include "ps/sparse_table.h"

namespace cairn {

// What a snapshot cut asks of a table.
struct ExportOptions {
  // Copies the caller is done with (the previous snapshot's, written out):
  // their buffers are overwritten where a tensor of the same dtype and shape
  // is needed, so a cut does not first-touch fresh memory.
  std::vector<ShardCopy> reuse;
  // A table that tracks which rows changed may export only those since its
  // previous cut (incremental snapshots); the dense store always exports
  // whole shards and ignores this.
  bool changed_rows_only = false;
};

// One sparse table's part of a snapshot cut: the table made copy on write
// as of the cut, no row copied yet, so the cut (and the event loop
// answering the prepare) waits for no copy at all. Finish copies the
// records as of the cut and sorts them, on whichever thread writes them
// out; the rows updated before Finish copied them were saved by those
// updates (SparseTable::CopyRecords). Tables are never dropped: `table` stays valid as
// long as the Table that made the cut.
struct SparseCut {
  const SparseTable* table = nullptr;
  SparseTable::Records records;

  int64_t rows() const { return records.rows; }
  uint64_t bytes() const;  // of the ids, values and slots Finish gives
  SparseCopy Finish() const;
};

class Table {
 public:
  using UpdateScope = std::shared_lock<std::shared_mutex>;

  virtual ~Table() = default;

  // --- Declaring ---
  // Creates and initializes a shard. The same declaration again is OK (its
  // values are kept); a different one under the same name is AlreadyExists.
  virtual Status Create(const ShardDecl& decl) = 0;
  virtual bool Holds(const std::string& name) const = 0;
  virtual size_t size() const = 0;  // shards held
  virtual std::vector<std::string> Names() const = 0;  // of the shards held, sorted
  // The shard's description without its values (values and slots empty).
  virtual StatusOr<ShardCopy> Describe(const std::string& name) const = 0;

  // --- The data path ---
  // The shard's values as of now. The tensor may share the table's buffer
  // (the table then copies on its next write): never write it.
  virtual StatusOr<Tensor> Pull(const std::string& name, ShardInfo* info = nullptr) const = 0;
  // Checks that `value`, sent for rows starting at `row_begin`, fits an
  // update of `kind` to shard `name`: it exists, rows, shape and dtype
  // match, and gradients go to trainable float32 shards.
  virtual Status CheckUpdate(const std::string& name, UpdateKind kind, int64_t row_begin,
                             const Tensor& value) const = 0;
  // Applies one update (checked as CheckUpdate). For gradients, `lr` >= 0
  // replaces the optimizer's configured learning rate.
  virtual Status Apply(const std::string& name, UpdateKind kind, const Tensor& value, float lr = -1) = 0;
  // Adds one to the int64 scalar `name`; false if not held here (or restoring).
  virtual bool CountStep(const std::string& name) = 0;
  // OK unless this table holds `name` and cannot count it now.
  virtual Status CheckCountable(const std::string& name) const = 0;
  virtual UpdateScope BeginUpdate() const = 0;

  // --- Sparse tables: this server's part of each (ps/sparse_table.h) ---
  // Creates one. The same declaration again is OK (its rows are kept);
  // another under the same name, or a dense variable's name, is
  // AlreadyExists naming both.
  virtual Status CreateSparse(const SparseTableDecl& decl) = 0;
  // The table `name`, or NotFound naming it. Tables are never dropped: the
  // pointer is valid as long as this Table. Updates of it run inside an
  // UpdateScope, like every other update.
  virtual StatusOr<SparseTable*> FindSparse(const std::string& name) const = 0;
  // FindSparse, with a share in the table's ownership: for work that may
  // outlive this Table (a pull's reply, looked up as it is written).
  virtual StatusOr<std::shared_ptr<SparseTable>> ShareSparse(const std::string& name) const = 0;
  virtual std::vector<std::string> SparseNames() const = 0;

  // --- Snapshots ---
  // Copies of the named shards held here (every shard if `names` is empty;
  // names held elsewhere are skipped), with their optimizer slots, as one
  // consistent cut. Sorted by name.
  //
  // With `sparse`, the same cut also copies this server's part of the
  // sparse tables among `names` (every sparse table if `names` is empty)
  // into it, sorted by name (SparseCut: the rows sorted by id later).
  virtual std::vector<ShardCopy> Export(const std::vector<std::string>& names, ExportOptions options = {},
                                        std::vector<SparseCut>* sparse = nullptr) const = 0;

  // --- Restore ---
  // Buffers for the named shards held here, to be filled by the caller
  // (from `reuse` where they fit; what it held and no copy took goes back
  // in `unused`). Sorted by name.
  virtual std::vector<ShardCopy> AllocateCopies(const std::vector<std::string>& names, bool with_slots,
                                                std::vector<ShardCopy> reuse = {},
                                                std::vector<ShardCopy>* unused = nullptr) const = 0;
  // Replaces shards' values (and slots, where given) as one cut; checked
  // whole before anything is replaced.
  virtual Status Import(const std::vector<ShardCopy>& copies) = 0;
  // Fills shards that hold only their initial values in place (no staging
  // copy); they take no reads or updates until FinishRestore. Returns the
  // names filled. See ShardStore::FillInitial for the full contract.
  virtual StatusOr<std::vector<std::string>> FillInitial(const std::vector<std::string>& names, bool with_slots,
                                                         const std::function<Status(ShardCopy&)>& fill) = 0;
  // Ends a FillInitial restore: `keep` the restored values, or initialize
  // the shards again.
  virtual void FinishRestore(const std::vector<std::string>& names, bool keep) = 0;
  // Replaces every row of each named sparse table with `tables[i].rows` (a
  // restore), as one cut; every table and its rows' shapes are checked
  // before any table changes.
  virtual Status ImportSparse(const std::vector<SparseCopy>& tables) = 0;
};

}  // namespace cairn
