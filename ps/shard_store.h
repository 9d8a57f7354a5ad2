// ShardStore: the shards one server holds, and the updates applied to them:
// the dense row-block Table (ps/table.h).
//
// A shard is rows [row_begin, row_end) of one variable, with its optimizer's
// slots (named "<variable>/<Optimizer>/<slot>"). Each shard has its own
// mutex; reads take the values under it and updates apply under it, so a pull
// never sees half an update. No lock is held across I/O (except by
// FillInitial, below): callers get copies, or (ReadShared) the shard's buffer
// itself, which the shard then copies before it next writes, for as long as
// a reader holds it.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/status.h"
#include "common/tensor.h"
#include "common/snapshot/shard_copy.h"
#include "ps/optimizer.h"
#include "ps/table.h"

namespace cairn {

class ShardStore final : public Table {
 public:
  ShardStore() = default;
  ShardStore(const ShardStore&) = delete;
  ShardStore& operator=(const ShardStore&) = delete;

  // Creates and initializes a shard. Creating the same shard again is OK (its
  // values are kept); a different spec, row range or optimizer under the same
  // name is AlreadyExists naming both.
  Status Create(const ShardDecl& decl) override;

  // A copy of the shard's values, taken under its lock.
  StatusOr<Tensor> Read(const std::string& name, ShardInfo* info = nullptr) const;
  // The shard's values as of now, without a copy: the tensor shares the
  // shard's buffer, and while any such tensor (or a view of its buffer) is
  // alive, an update writes the shard's new values into a fresh buffer
  // instead (copy on write). So the bytes never change under the reader,
  // who must not write them either. For a pull, whose reply is written out
  // and dropped long before the next update comes, this saves the copy.
  StatusOr<Tensor> ReadShared(const std::string& name, ShardInfo* info = nullptr) const;
  StatusOr<Tensor> Pull(const std::string& name, ShardInfo* info = nullptr) const override {
    return ReadShared(name, info);
  }

  // Checks that `value` fits an update of `kind` to shard `name`: it exists,
  // `row_begin` is the shard's, the shape and dtype match, and gradients go
  // to trainable float32 shards.
  Status CheckUpdate(const std::string& name, UpdateKind kind, int64_t row_begin, const Tensor& value) const override;
  // Applies one update (checked as CheckUpdate). For gradients, `lr` >= 0
  // replaces the optimizer's configured learning rate.
  Status Apply(const std::string& name, UpdateKind kind, const Tensor& value, float lr = -1) override;

  // Adds one to the int64 scalar variable `name`. False if this store does
  // not hold it (another server does), or it is restoring (see FillInitial;
  // CheckCountable tells beforehand).
  bool CountStep(const std::string& name) override;
  // OK unless this store holds `name` and it is restoring.
  Status CheckCountable(const std::string& name) const override;
  bool Holds(const std::string& name) const override;

  size_t size() const override;
  std::vector<std::string> Names() const override;

  // Updates that touch several shards (one push, one sync step) run inside
  // an UpdateScope; Export waits for them and holds new ones off, so a
  // snapshot never sees half a push. Scopes run concurrently with each other.
  UpdateScope BeginUpdate() const override { return UpdateScope(update_mu_); }

  // Copies of the named shards this store holds (every shard if `names` is
  // empty; names held elsewhere are skipped), with their optimizer slots,
  // taken as one consistent cut (see BeginUpdate). Sorted by name.
  //
  // `options.reuse`: copies the caller is done with (an earlier Export's, written
  // out). Their buffers are overwritten in place where a tensor of the same
  // dtype and shape is needed, so a snapshot does not first-touch fresh
  // memory; anything else is allocated. A tensor whose buffer is shared
  // (another Tensor still views it) is never overwritten, only dropped, so a
  // copy still in use cannot change under its user.
  std::vector<ShardCopy> Export(const std::vector<std::string>& names, ExportOptions options = {},
                                std::vector<SparseCut>* sparse = nullptr) const override;
  // The shard's description without its values (values and slots empty).
  StatusOr<ShardCopy> Describe(const std::string& name) const override;
  // Descriptions of the named shards this store holds (names held elsewhere
  // are skipped), each with buffers for its values and (if `with_slots`)
  // slots, to be filled by the caller: taken from `reuse` as Export takes
  // them, else uninitialized. Sorted by name.
  // What `reuse` held and no copy took is handed back in `unused`, if given.
  std::vector<ShardCopy> AllocateCopies(const std::vector<std::string>& names, bool with_slots,
                                        std::vector<ShardCopy> reuse = {},
                                        std::vector<ShardCopy>* unused = nullptr) const override;
  // Replaces shards' values and slots (a restore) as one cut. Each copy's
  // values must have its shard's shape and dtype; its slots are either
  // empty (kept as they are) or exactly the shard's slots. Checked whole
  // before anything is replaced.
  Status Import(const std::vector<ShardCopy>& copies) override;

  // A restore written straight into the shards, for shards that hold
  // nothing but what Create put in (never updated since): a restore onto a
  // fresh cluster or into a restarted server, which then needs neither a
  // staging copy nor its first touch of new memory.
  //
  // For each of `names` that this store holds and that is still initial,
  // calls `fill` with a ShardCopy whose values (and slots, if `with_slots`)
  // are the shard's own tensors, for `fill` to overwrite. The names filled
  // are returned; the others (updated since creation, or held elsewhere) are
  // left for the caller to stage and Import. `fill` runs under the cut
  // (updates wait) and the shard's lock (a pull of it waits): the one place
  // the store holds a lock across I/O.
  //
  // A filled shard is *restoring* until FinishRestore: it refuses reads and
  // updates (FailedPrecondition naming it), so nobody sees or changes a
  // restore that may yet be discarded. If `fill` fails, every shard this
  // call filled is initialized again, which gives the same bytes Create
  // gave, and the error is returned: a failed restore changes nothing.
  StatusOr<std::vector<std::string>> FillInitial(const std::vector<std::string>& names, bool with_slots,
                                                 const std::function<Status(ShardCopy&)>& fill) override;
  // Ends a FillInitial restore of `names` (names held elsewhere are
  // skipped): `keep` makes the restored values the shards' own; otherwise
  // they are initialized again as Create did. Either way the shards take
  // reads and updates again.
  void FinishRestore(const std::vector<std::string>& names, bool keep) override;

  Status CreateSparse(const SparseTableDecl& decl) override;
  StatusOr<SparseTable*> FindSparse(const std::string& name) const override;
  StatusOr<std::shared_ptr<SparseTable>> ShareSparse(const std::string& name) const override;
  std::vector<std::string> SparseNames() const override;
  Status ImportSparse(const std::vector<SparseCopy>& tables) override;

 private:
  struct Shard {
    ShardInfo info;
    OptimizerSpec optimizer_spec;
    std::unique_ptr<Optimizer> optimizer;  // constant after creation
    std::vector<SlotDef> slot_defs;        // constant after creation
    mutable std::mutex mu;
    // Guarded by mu. Its buffer may be shared with readers (ReadShared):
    // write it only through WritableValues.
    Tensor values;
    // Readers holding views of values' current buffer (see Lend); each new
    // buffer gets a new count. The pointer is guarded by mu; the count is
    // shared with the views, which may outlive the store.
    std::shared_ptr<std::atomic<int64_t>> readers = std::make_shared<std::atomic<int64_t>>(0);
    std::vector<Tensor> slots;   // guarded by mu
    bool initial = true;         // guarded by mu: holds only what Create (or FinishRestore) put in
    bool restoring = false;      // guarded by mu: filled by FillInitial, not yet finished
  };

  // FailedPrecondition if the shard is restoring; shard.mu must be held.
  static Status CheckNotRestoring(const Shard& shard);

  // Writes the shard's initial values and slots; shard.mu must be held (or
  // the shard not yet shared).
  static void Initialize(Shard& shard);

  // A view of shard.values for a reader (ReadShared); shard.mu must be held.
  static Tensor Lend(Shard& shard);

  // shard.values, ready to be written in place; shard.mu must be held.
  // Every write of a shard's values or slots goes through it, so it also
  // marks the shard as no longer initial.
  static Tensor& WritableValues(Shard& shard);

  StatusOr<Shard*> Find(const std::string& name) const;
  // The named sparse tables (every one if `names` is empty), sorted by name.
  std::vector<SparseTable*> ChooseSparse(const std::vector<std::string>& names) const;
  // The named shards (every shard if `names` is empty), sorted by name.
  std::vector<Shard*> Choose(const std::vector<std::string>& names) const;
  // Copies of `shards` with buffers from `reuse` where they fit; what
  // `reuse` held and no copy took goes to `unused`, if given.
  static std::vector<ShardCopy> Allocate(const std::vector<Shard*>& shards, bool with_slots,
                                         std::vector<ShardCopy> reuse, std::vector<ShardCopy>* unused = nullptr);
  static Status CheckUpdateOf(const Shard& shard, UpdateKind kind, const Tensor& value);
  static Status CheckConflict(const Shard& existing, const ShardDecl& decl);

  mutable std::shared_mutex update_mu_;                   // shared: an update; exclusive: a cut
  mutable std::shared_mutex mu_;                          // guards the map, not the shards
  std::map<std::string, std::unique_ptr<Shard>> shards_;  // guarded by mu_
  std::map<std::string, std::shared_ptr<SparseTable>> sparse_;  // guarded by mu_; never erased
};

}  // namespace cairn
