// VariableStore: where a Session's global variables live.
//
// PsClient keeps them on parameter servers; InProcessStore
// (ps/in_process_store.h) keeps them in this process, over the servers'
// ShardStore (the no-server ceiling the benchmarks compare against).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/status.h"
#include "common/sparse_spec.h"
#include "common/tensor.h"
#include "common/variable_spec.h"

namespace cairn {

// One sparse table's gradient in a push: unique int64 ids [n] and their
// rows [n, dim] (float32). Repeated ids are summed before they get here.
struct SparseRowsUpdate {
  Tensor ids;
  Tensor values;
};

// The updates of one Session::Run, sent together.
struct PushBatch {
  std::map<std::string, Tensor> gradients;    // applied by each variable's optimizer
  std::map<std::string, Tensor> assigns;      // new values
  std::map<std::string, Tensor> assign_adds;  // deltas
  std::map<std::string, SparseRowsUpdate> sparse_gradients;  // by sparse table
  bool train_step = false;    // a Minimize step: synchronized in sync mode, counted in global_step
  float learning_rate = -1;   // >= 0: replaces the optimizer's configured rate
  std::string global_step;    // int64 variable counting train steps ("" for none)

  bool empty() const {
    return gradients.empty() && assigns.empty() && assign_adds.empty() && sparse_gradients.empty() && !train_step;
  }
};

class VariableStore {
 public:
  virtual ~VariableStore() = default;
  // Declares the variables (idempotent; a conflicting earlier declaration is
  // an error). Trainable ones get `optimizer`.
  virtual Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                        const TrainingMode& mode) = 0;
  virtual StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) = 0;
  // Declares sparse embedding tables (after Create, in the same mode),
  // their rows' gradients applied by `optimizer`. Idempotent, like Create.
  virtual Status CreateSparse(const std::vector<SparseTableSpec>& tables, const OptimizerSpec& optimizer) {
    return Unimplemented("this variable store holds no sparse tables");
  }
  // Rows of sparse tables: for each table, int64 ids [n] (any order,
  // repeats allowed) -> float32 rows [n, dim] in the same order. Rows never
  // updated hold their initial values.
  virtual StatusOr<std::map<std::string, Tensor>> SparsePull(const std::map<std::string, Tensor>& ids) {
    return Unimplemented("this variable store holds no sparse tables");
  }
  virtual Status Push(const PushBatch& batch) = 0;
  // After a restore: the store's notion of the training step continues at
  // `global_step` (PsClient's sync step). No-op by default.
  // (In ssp mode the argument is the worker's own steps: its clock.)
  virtual void ResumeAt(int64_t global_step) { (void)global_step; }
  // This worker has finished training (ssp mode: its clock stops holding
  // the others back).
  virtual Status Leave() { return Status::OK(); }
};

}  // namespace cairn
