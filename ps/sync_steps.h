// SyncSteps: synchronous training on one server.
//
// Each step collects exactly one push from each of the W workers. When the
// last arrives, the gradients of every variable are summed in worker order
// (a fixed order, so two runs give bit-identical weights), divided by W,
// and applied once; assigns in those pushes are applied in worker order;
// the step counter (global_step, if this server holds it) advances by one;
// then every waiting push is answered. Workers block in their push until
// then, which is what releases the next step's pulls.
//
// If the step is not complete `timeout` after its first push arrived, then
// with MissingWorkers::kFail every waiting push fails with a
// DeadlineExceeded naming the missing workers, and the step is not applied;
// with "continue" the step is applied with the workers that arrived (the
// mean over them), and the missing ones are dropped: later steps do not wait
// for them, and a push from a dropped worker is refused.
//
// After Reset (a restore), a push for any other step than the restored one
// fails with Aborted: the cluster rolled back, and the worker must resume
// from the snapshot's position.
//
// Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/mutex.h"
#include "common/messages.h"
#include "common/status.h"
#include "common/tensor.h"
#include "ps/table.h"

namespace cairn {

class SyncSteps : public std::enable_shared_from_this<SyncSteps> {
 public:
  using Reply = std::function<void(const Status&)>;

  // One worker's push for one step; `values[i]` is `request.grads[i]`'s tensor.
  // `sparse[i]` is `request.sparse[i]`'s rows, viewing `payload`.
  struct Arrival {
    PushRequest request;
    std::vector<Tensor> values;
    std::vector<SparseGradient> sparse;
    std::shared_ptr<uint8_t> payload;  // keeps `sparse`'s bytes alive
    Reply reply;
  };

  // `store` must outlive this object.
  SyncSteps(boost::asio::io_context& io, Table* store, TrainingMode mode, int server_index);

  // Takes a push (already validated against the store). Replies through
  // arrival.reply, maybe later and on another thread.
  void Arrive(Arrival arrival);

  // The step the next complete round will apply.
  int64_t step() const;
  // Continues at `step` (after a restore): pushes waiting for the current
  // step fail with Aborted.
  void Reset(int64_t step);
  // The server is going away: pushes waiting for a step fail with `reason`.
  void Cancel(const Status& reason);

 private:
  Status Admit(const PushRequest& request) const CAIRN_REQUIRES(mu_);
  void Complete(std::map<int, Arrival> round, int64_t step);
  void Expire(int64_t step);
  std::string Missing() const CAIRN_REQUIRES(mu_);
  Status ApplySparseMean(const std::map<int, Arrival>& round, float scale, float lr);
  int Expected() const CAIRN_REQUIRES(mu_);  // pushes a round needs

  // Constant after construction.
  boost::asio::io_context& io_;
  Table* const store_;
  const TrainingMode mode_;
  const int server_index_;

  mutable Mutex mu_;
  int64_t step_ CAIRN_GUARDED_BY(mu_) = 0;
  int64_t resets_ CAIRN_GUARDED_BY(mu_) = 0;
  std::set<int> dropped_ CAIRN_GUARDED_BY(mu_);  // workers left out ("continue")
  std::map<int, Arrival> arrived_ CAIRN_GUARDED_BY(mu_);  // by worker id
  std::unique_ptr<boost::asio::steady_timer> timer_ CAIRN_GUARDED_BY(mu_);
};

}  // namespace cairn
