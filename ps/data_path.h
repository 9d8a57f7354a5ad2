// DataPath: the requests training makes of a server — declaring variables
// (which fixes the training mode), pulls and pushes — applied to the
// server's Table.
//
// Every tensor descriptor is checked against the shard it addresses (name,
// first row, shape, dtype) before anything is applied: a push applies whole
// or not at all. A pull names each variable once, and its reply is bounded
// by the frame limits.
//
// Pushes are applied once: a push re-sent after a lost reply (same worker,
// client incarnation and sequence) gets the first copy's answer (PushLog).
// In sync mode a training push waits for its step (SyncSteps). In ssp mode
// a training push advances its worker's clock once it is applied, and a pull
// stamped with a clock waits until the slowest worker is within the
// staleness bound (SspClocks).
//
// Thread-safe. Owns the training mode and the sync rounds, guarded by mu_;
// the table and push log are thread-safe on their own.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "common/mutex.h"
#include "common/event_loop.h"
#include "common/frame.h"
#include "common/messages.h"
#include "common/status.h"
#include "ps/connections.h"
#include "ps/push_log.h"
#include "ps/ssp_clocks.h"
#include "ps/sync_steps.h"
#include "ps/table.h"

namespace cairn {

class DataPath {
 public:
  // `loop` and `table` must outlive this object.
  DataPath(EventLoop& loop, Table& table, int server_index, FrameLimits limits);
  // Pushes still waiting for a sync step fail (Cancelled).
  ~DataPath();

  // The chief (and the operator) create; another worker's declaration must
  // name what is here already (see CheckDeclared).
  void HandleCreate(const Request& r);
  void HandlePull(const Request& r);
  void HandlePush(Request r);
  // Rows of sparse tables by id (SparsePullRequest): rows never updated
  // come back with their initial values; nothing is created.
  void HandleSparsePull(const Request& r);

  // The first CreateVariables (or a restore on start) fixes the training
  // mode; later ones must agree.
  Status SetMode(const TrainingMode& mode);
  // Sync mode: the step the next round applies; -1 when not in sync mode.
  int64_t sync_step() const;
  // After a restore is applied: a sync round continues at `sync_step` (if
  // >= 0), and pushes retried from before it are applied to the restored
  // state instead of answered from the log.
  void Restored(int64_t snapshot_step, int64_t sync_step);

  uint64_t pushes_applied() const { return pushes_applied_.load(); }
  uint64_t pulls_served() const { return pulls_served_.load(); }
  uint64_t duplicate_pushes() const { return duplicate_pushes_.load(); }
  // ssp mode: reads parked for the slowest worker and their wait (0 otherwise).
  uint64_t ssp_reads_parked() const;
  double ssp_wait_seconds() const;

 private:
  Status CheckDeclared(const CreateRequest& req, const PeerIdentity& peer) const;
  void ServePull(const Request& r, const PullRequest& req);
  void ServeSparsePull(const Request& r, const SparsePullRequest& req);
  Status FillPullReply(const InFrame& frame, const PullRequest& req, OutFrame* reply);
  // ssp mode, a read stamped with a clock: `serve` runs once `clocks` admits
  // it (maybe later, on a loop thread), or the request fails. Reads in the
  // other modes are served directly, without this.
  void AdmitRead(SspClocks& clocks, const Request& r, int32_t worker, int64_t clock,
                 std::function<void(const Request&)> serve);
  Status DecodePush(const InFrame& frame, PushRequest* req, std::vector<Tensor>* values,
                    std::vector<SparseGradient>* sparse);
  // The table a desc names, with its dim checked.
  StatusOr<std::shared_ptr<SparseTable>> SparseTableOf(const SparseDesc& d) const;
  std::shared_ptr<SyncSteps> sync() const;
  std::shared_ptr<SspClocks> ssp() const;

  // Constant after construction.
  EventLoop& loop_;
  Table& table_;  // thread-safe
  const int index_;
  const FrameLimits limits_;
  PushLog push_log_;  // thread-safe

  mutable Mutex mu_;
  std::optional<TrainingMode> mode_ CAIRN_GUARDED_BY(mu_);  // set by the first create
  std::shared_ptr<SyncSteps> sync_ CAIRN_GUARDED_BY(mu_);  // set in sync mode
  std::shared_ptr<SspClocks> ssp_ CAIRN_GUARDED_BY(mu_);   // set in ssp mode

  std::atomic<uint64_t> pushes_applied_{0}, pulls_served_{0}, duplicate_pushes_{0};
};

}  // namespace cairn
