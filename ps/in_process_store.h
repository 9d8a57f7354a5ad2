// InProcessStore: a VariableStore held in this process, with the same shard
// store and optimizers as a server but no network. One worker only (sync
// mode degenerates to async). Used by tests and by `cairn train
// --in-process`, the no-server throughput ceiling.
//
// It lives beside ShardStore, which it is built on; of worker/ it needs only
// the VariableStore interface (worker/variable_store.h, header only).
//
// Thread-safe.
#pragma once

#include <atomic>

#include "ps/shard_store.h"
#include "worker/variable_store.h"

namespace cairn {

class InProcessStore : public VariableStore {
 public:
  Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                const TrainingMode& mode) override;
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) override;
  Status PullInto(const std::vector<std::string>& names, std::map<std::string, Tensor>* out) override;
  Status Push(const PushBatch& batch) override;
  Status CreateSparse(const std::vector<SparseTableSpec>& tables, const OptimizerSpec& optimizer) override;
  StatusOr<std::map<std::string, Tensor>> SparsePull(const std::map<std::string, Tensor>& ids) override;

  // Counts for tests.
  int64_t pulls() const { return pulls_; }
  int64_t pushes() const { return pushes_; }

 private:
  ShardStore store_;
  std::atomic<int64_t> pulls_{0}, pushes_{0};
};

}  // namespace cairn
