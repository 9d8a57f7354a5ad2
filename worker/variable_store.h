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
#include "common/tensor.h"
#include "common/variable_spec.h"

namespace cairn {

// The updates of one Session::Run, sent together.
struct PushBatch {
  std::map<std::string, Tensor> gradients;    // applied by each variable's optimizer
  std::map<std::string, Tensor> assigns;      // new values
  std::map<std::string, Tensor> assign_adds;  // deltas
  bool train_step = false;    // a Minimize step: synchronized in sync mode, counted in global_step
  float learning_rate = -1;   // >= 0: replaces the optimizer's configured rate
  std::string global_step;    // int64 variable counting train steps ("" for none)

  bool empty() const { return gradients.empty() && assigns.empty() && assign_adds.empty() && !train_step; }
};

class VariableStore {
 public:
  virtual ~VariableStore() = default;
  // Declares the variables (idempotent; a conflicting earlier declaration is
  // an error). Trainable ones get `optimizer`.
  virtual Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                        const TrainingMode& mode) = 0;
  virtual StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) = 0;
  virtual Status Push(const PushBatch& batch) = 0;
  // After a restore: the store's notion of the training step continues at
  // `global_step` (PsClient's sync step). No-op by default.
  virtual void ResumeAt(int64_t global_step) { (void)global_step; }
};

}  // namespace cairn
