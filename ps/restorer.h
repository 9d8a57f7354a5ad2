// Restorer: loads a server's shards from a committed snapshot, whatever the
// number of servers that wrote it (common/snapshot/snapshot_reader.h).
//
// A cluster restore has three phases, so that it changes every server or
// none: kStage reads and verifies every shard this server holds, kApply
// puts the staged values in, kDiscard drops them. Shards that hold only
// their initial values (a fresh cluster, a restarted server) are read
// straight into the table (Table::FillInitial) and refuse reads and updates
// until the restore is applied or discarded; the others (a rollback of a
// trained cluster) are staged in the copy pool's buffers.
//
// Phases run one at a time, in arrival order, on the restorer's own thread:
// a restore reads the disk for seconds and must not hold up the event loop
// that serves pushes and pulls. A discard queued behind a stage still
// reading undoes it once it is done; a new stage, or an apply of another
// step, undoes a stage that was never applied (its chief gone, say).
//
// Sparse tables: a request's variables may name sparse tables. kStage
// reads, from every server database of the snapshot, the rows whose id
// ServerOfId routes to this server in the current cluster (so a snapshot
// of another server count is re-routed), with their slots (or the slots'
// initial values when the request restores no slots), and holds them;
// kApply replaces every row of the table with them (Table::ImportSparse);
// kDiscard drops them and the table is as it was.
//
// RestoreOnStart loads the newest committed snapshot before the server
// listens (a restarted standalone server), as that snapshot placed the
// shards on this server.
//
// Thread-safe. The staged restore belongs to the restore thread; what Hello
// reports of it is guarded by mu_.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/mutex.h"
#include "common/crash_point.h"
#include "ps/connections.h"
#include "ps/copy_pool.h"
#include "ps/data_path.h"
#include "ps/snapshot_fence.h"
#include "ps/table.h"

namespace cairn {
class SnapshotReader;
}

namespace cairn {

struct RestorerOptions {
  int server_index = 0;
  int num_servers = 0;  // the cluster's (RestoreOnStart checks the snapshot's)
  std::string model_dir;  // the only directory restores read (CheckOwnModelDir)
};

class Restorer {
 public:
  // Everything borrowed must outlive this object.
  Restorer(Table& table, CopyPool& pool, SnapshotFence& fence, DataPath& data, RestorerOptions options);
  ~Restorer();  // Stop()

  // Before the server listens: loads this server's shards from the newest
  // committed snapshot in `dir`, if there is one (a missing directory, or
  // one with no commit yet, starts empty).
  Status RestoreOnStart(const std::string& dir);

  // Queues a SnapshotRestore request for the restore thread.
  void HandleRestore(Request r);

  // Finishes the phase running, drops those queued. Idempotent.
  void Stop();

  struct Report {
    uint64_t restore_id = 0;   // of the last restore applied (0: none)
    int64_t restored_step = -1;
    bool staged = false;       // read, not yet applied or discarded
    uint64_t restores = 0;     // restores applied
  };
  Report report() const;

 private:
  struct Staged;
  void Run();  // the restore thread
  StatusOr<SnapshotRestoreReply> Phase(const SnapshotRestoreRequest& req);
  Status Read(Staged* staged);
  Status ReadSparse(SnapshotReader& reader, Staged* staged);
  Status Apply(Staged* staged);
  void Drop(Staged* staged);
  void SetStaged(std::unique_ptr<Staged> staged);

  // Constant after construction.
  Table& table_;
  CopyPool& pool_;
  SnapshotFence& fence_;
  DataPath& data_;
  const RestorerOptions options_;

  std::unique_ptr<Staged> staged_;  // the restore thread's (or RestoreOnStart's, before it starts)

  mutable Mutex mu_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_ CAIRN_GUARDED_BY(mu_);
  bool stopped_ CAIRN_GUARDED_BY(mu_) = false;
  Report report_ CAIRN_GUARDED_BY(mu_);
  std::thread thread_;                       // started by the constructor
};

}  // namespace cairn
