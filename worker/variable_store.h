// VariableStore: where a Session's global variables live.
//
// PsClient keeps them on parameter servers; InProcessStore
// (ps/in_process_store.h) keeps them in this process, over the servers'
// ShardStore (the no-server ceiling the benchmarks compare against).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
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

// A call sent and not yet waited for (VariableStore::PullAsync, PushAsync). Wait
// blocks until its replies are in and returns the call's result; it may be
// called once. Dropping one unwaited lets its requests run to their end
// unobserved (a push is still applied).
template <class T>
class PendingCall {
 public:
  // A call that ended before anything was sent (an error found first).
  static PendingCall Done(T result) {
    PendingCall p;
    p.result_.emplace(std::move(result));
    return p;
  }
  // A call whose `wait` blocks for its replies and makes its result.
  static PendingCall Later(std::function<T()> wait) {
    PendingCall p;
    p.wait_ = std::move(wait);
    return p;
  }
  T Wait() {
    if (wait_) result_.emplace(std::exchange(wait_, nullptr)());
    return std::move(*result_);
  }

 private:
  PendingCall() = default;
  std::optional<T> result_;
  std::function<T()> wait_;
};

class VariableStore {
 public:
  virtual ~VariableStore() = default;
  // Declares the variables (idempotent; a conflicting earlier declaration is
  // an error). Trainable ones get `optimizer`.
  virtual Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                        const TrainingMode& mode) = 0;
  virtual StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) = 0;
  // Pull into *out, which then holds exactly `names`. A store may reuse the
  // map's nodes (when it already holds those names) and so allocate none:
  // a Session pulls every step into the same map.
  virtual Status PullInto(const std::vector<std::string>& names, std::map<std::string, Tensor>* out) {
    ASSIGN_OR_RETURN(*out, Pull(names));
    return Status::OK();
  }
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
  // Pull and Push without waiting for the result (Session's overlap): a
  // store that can keep calls in flight sends them and returns at once; by
  // default they run to their end here. Calls leave in the order they are
  // made (see PsClient for what a server does with that order).
  virtual PendingCall<StatusOr<std::map<std::string, Tensor>>> PullAsync(const std::vector<std::string>& names) {
    return PendingCall<StatusOr<std::map<std::string, Tensor>>>::Done(Pull(names));
  }
  virtual PendingCall<Status> PushAsync(const PushBatch& batch) { return PendingCall<Status>::Done(Push(batch)); }
  // After a restore: the store's notion of the training step continues at
  // `global_step` (PsClient's sync step). No-op by default.
  // (In ssp mode the argument is the worker's own steps: its clock.)
  virtual void ResumeAt(int64_t global_step) { (void)global_step; }
  // This worker has finished training (ssp mode: its clock stops holding
  // the others back).
  virtual Status Leave() { return Status::OK(); }
};

}  // namespace cairn
