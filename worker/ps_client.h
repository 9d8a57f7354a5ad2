// PsClient: a worker's view of the parameter servers (a VariableStore).
//
// Create computes the placement from the variable specs and the server
// count, so callers name whole variables: Pull gathers a variable's slices
// from every server that holds one and reassembles them; Push slices each
// tensor by rows and sends each server its part. Requests to different
// servers go out in parallel; each call waits at most options.timeout
// (reconnecting and re-sending inside that time, see AsioTransport). A push
// whose call fails with Unavailable (a transport that reports a lost
// connection instead of re-sending, such as FaultTransport in tests; never
// AsioTransport) is sent again with the same (worker, incarnation, sequence)
// until it is answered or that time is up; other calls report it.
//
// Several calls in flight: PullAsync and PushAsync send their requests and
// return at once; the caller waits for each (PendingCall::Wait) when it needs
// the result, and bounds how many it keeps in flight. Requests to one server
// leave in the order they were made, on one connection; a server with one
// event-loop thread answers them in that order, one with more may not (wait
// for a push before a pull that must see it).
//
// Create must finish before Pull or Push are called; after that, Pull and
// Push are thread-safe as long as the Transport is.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/placement.h"
#include "common/status.h"
#include "common/tensor.h"
#include "common/transport.h"
#include "worker/variable_store.h"

namespace cairn {

struct PsClientOptions {
  int32_t worker_id = 0;                      // stamped on pushes
  std::chrono::milliseconds timeout{30000};   // deadline of each call
  PlacementOptions placement;                 // how variables are spread over servers
  uint64_t incarnation = 0;                   // stamped on pushes; 0: a random one per client
  // This worker's view of the cluster, sent with every Hello (see
  // HelloRequest::cluster; empty: not checked by the servers).
  std::string cluster = {};
};

class PsClient : public VariableStore {
 public:
  // `transport` is not owned and must outlive the client.
  PsClient(Transport* transport, PsClientOptions options = {});

  // Says Hello to every server first: a server that refuses this worker's
  // view of the cluster, or that is not the server of the index it was
  // dialed as, is a FailedPrecondition naming the difference.
  Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                const TrainingMode& mode) override;
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) override;
  Status Push(const PushBatch& batch) override;
  // Pull and Push without waiting: see above. The batch's tensors are kept
  // alive by the call (no copy). In sync mode, a train-step push claims the
  // step after the last one waited for: wait for each before the next.
  PendingCall<StatusOr<std::map<std::string, Tensor>>> PullAsync(const std::vector<std::string>& names) override;
  PendingCall<Status> PushAsync(const PushBatch& batch) override;
  // Every server holds a part of every sparse table (the ids ServerOfId
  // routes to it); a pull or push sends each server only its ids, one
  // request per server for every table at once.
  Status CreateSparse(const std::vector<SparseTableSpec>& tables, const OptimizerSpec& optimizer) override;
  StatusOr<std::map<std::string, Tensor>> SparsePull(const std::map<std::string, Tensor>& ids) override;

  // The server's counters.
  StatusOr<StatsReply> Stats(int server);

  // Wall time this client's callers spent in Pull and SparsePull (in ssp
  // mode, waiting for the slowest worker included) and in Push (in sync
  // mode, waiting for the step's last worker included), since construction:
  // for PullAsync and PushAsync, the time spent sending them and in Wait.
  double pull_seconds() const { return pull_ns_.load() * 1e-9; }
  double push_seconds() const { return push_ns_.load() * 1e-9; }

  // Who each server is (incarnation) and what it last restored, by server
  // index. FailedPrecondition if a server refuses this worker's view of the
  // cluster or answers with another index than the one it was dialed as.
  StatusOr<std::vector<HelloReply>> Hello();

  // A server process that is not the one this client first talked to.
  struct ServerRestart {
    int server = 0;
    int64_t restored_step = -1;  // the snapshot it restored on start (-1: it came up empty)
    uint64_t variables = 0;      // shards it holds
  };
  // Servers that restarted since the last call (the first call only records
  // who they are), each declared the variables again (a snapshot leaves
  // some out). Asks them (Hello) only if the transport reconnected since.
  StatusOr<std::vector<ServerRestart>> CheckForRestarts();

  // Sync-mode recovery: waits until every server has applied the same
  // restore (equal, non-zero restore ids, nothing staged), i.e. the chief's
  // cluster-wide rollback is done, or fails at `deadline`. Returns that
  // restore's snapshot step.
  StatusOr<int64_t> WaitForRollback(Deadline deadline);
  int num_servers() const { return transport_->num_servers(); }

  // Snapshots (see ps/server.h), sent to every server at once. The replies'
  // byte counts are summed and their times are the slowest server's.
  // Prepare returns once every server has copied its shards of
  // `request.names`; `reported` holds every server's reported rows.
  StatusOr<SnapshotPrepareReply> SnapshotPrepare(const SnapshotPrepareRequest& request);
  // Returns once every server has synced its database for `step`.
  StatusOr<SnapshotWaitReply> SnapshotWait(int64_t step);
  // Every server loads its shards of `request.variables` from the snapshot.
  StatusOr<SnapshotRestoreReply> SnapshotRestore(const SnapshotRestoreRequest& request);

  // ssp mode: tells every server this worker has finished training, so that
  // its clock holds no one back. Nothing to do in the other modes.
  Status Leave() override;

  // Sync mode: train-step pushes continue at `global_step` (after a
  // restore); ssp mode: this worker's clock continues at its own steps.
  void ResumeAt(int64_t global_step) override { next_step_ = global_step; }
  // Valid after Create.
  const Placement& placement() const { return *placement_; }
  // The sync step the next train-step push claims (0 after Create).
  int64_t next_step() const { return next_step_; }

 private:
  Deadline NextDeadline() const { return Clock::now() + options_.timeout; }
  Status CheckCreated(const char* what) const;
  Status SendCreates(std::vector<std::pair<int, OutFrame>> calls);
  // A push's frames, one per server it reaches, stamped with the next sequence.
  StatusOr<std::vector<std::pair<int, OutFrame>>> BuildPush(const PushBatch& batch);
  // The dim of sparse table `name`, or NotFound if CreateSparse did not declare it.
  StatusOr<int32_t> SparseDim(const std::string& name) const;
  // Sends each push whose call failed with Unavailable again (calls[i] got
  // (*replies)[i]) until it is answered or `deadline` is near.
  void ResendLostPushes(const std::vector<std::pair<int, OutFrame>>& calls, Deadline deadline,
                        std::vector<StatusOr<InFrame>>* replies);
  template <class Reply, class Request, class Merge>
  Status CallEveryServer(FrameType type, const Request& request, Deadline deadline, Merge merge);

  Transport* const transport_;
  const PsClientOptions options_;
  std::optional<Placement> placement_;  // set by Create
  TrainingMode mode_;                   // set by Create
  uint64_t incarnation_ = 0;            // constant after construction
  std::atomic<uint64_t> next_sequence_{1};
  std::mutex restarts_mu_;
  std::vector<uint64_t> incarnations_;   // guarded by restarts_mu_; by server, 0: unknown
  uint64_t seen_reconnects_ = 0;         // guarded by restarts_mu_
  std::vector<std::string> creates_;     // guarded by restarts_mu_: each server's CreateRequest, encoded
  std::atomic<int64_t> next_step_{0};
  std::atomic<int64_t> pull_ns_{0}, push_ns_{0};
  std::map<std::string, int32_t> sparse_dims_;  // set by CreateSparse: each table's dim
};

}  // namespace cairn
