// SnapshotWriter: a server's part of a cluster snapshot.
//
// Prepare (on the event loop) copies the requested shards, and this
// server's part of the requested sparse tables, from the table as one
// consistent cut — pushes wait only for this memcpy — and answers with the
// sparse tables' row counts (the chief's manifest records them); a
// thread of the writer's own then does everything that touches the disk:
// it clears a database left by an uncommitted attempt, writes this server's
// database for the step (common/snapshot/snapshot_db.h) and syncs it. Wait
// answers once that is done. One snapshot at a time.
//
// In sync mode every server is at exactly the snapshot's step while the
// chief prepares it; a server at another step (restarted from an older
// snapshot, the request re-sent after it reconnected) refuses, so its
// shards are never saved under the wrong step's name.
//
// Thread-safe. Owns the current job and its thread, guarded by mu_.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/snapshot/snapshot_db.h"
#include "ps/connections.h"
#include "ps/copy_pool.h"
#include "ps/snapshot_fence.h"
#include "ps/table.h"

namespace cairn {

struct SnapshotWriterOptions {
  int server_index = 0;
  std::string model_dir;       // the only directory snapshots are written to (CheckOwnModelDir)
  SnapshotWriteOptions write;  // chunking, the file system, crash points
  // Sync mode: the step this server is at (-1 when not in sync mode).
  std::function<int64_t()> sync_step = [] { return int64_t{-1}; };
};

class SnapshotWriter {
 public:
  // Everything borrowed must outlive this object.
  SnapshotWriter(Table& table, CopyPool& pool, SnapshotFence& fence, SnapshotWriterOptions options);
  ~SnapshotWriter();  // Stop()

  void HandlePrepare(const Request& r);
  void HandleWait(const Request& r);

  // The first snapshot of a process would copy into fresh memory, first-
  // touching every page under the cut (10-25x a memcpy into touched memory
  // in a VM). So, once variables are declared, a thread of the writer's own
  // allocates and touches copy buffers for every shard the table holds and
  // gives them to the pool, off the training path; a Prepare that comes
  // first waits for it to finish rather than allocating beside it. Does
  // nothing once a snapshot was prepared, while buffers are being prepared,
  // without a model directory, or when the pool keeps no buffers.
  void PrepareBuffersAhead();
  // Buffers prepared by PrepareBuffersAhead (bytes; 0 until its thread is done).
  uint64_t buffers_prepared_bytes() const;

  // Waits for a write in progress. Later prepares are refused. Idempotent.
  void Stop();
  uint64_t snapshots_written() const;

 private:
  struct Job;
  StatusOr<SnapshotPrepareReply> Prepare(const SnapshotPrepareRequest& req);
  void Write(const std::shared_ptr<Job>& job, std::shared_ptr<std::vector<ShardCopy>> copies,
             std::shared_ptr<std::vector<SparseCut>> sparse, const std::string& model_dir);
  void Finish(const std::shared_ptr<Job>& job, const Status& s, const SnapshotIoStats& io);

  // Constant after construction.
  Table& table_;
  CopyPool& pool_;
  SnapshotFence& fence_;
  const SnapshotWriterOptions options_;

  mutable Mutex mu_;
  bool stopped_ CAIRN_GUARDED_BY(mu_) = false;
  std::shared_ptr<Job> job_ CAIRN_GUARDED_BY(mu_);  // the latest snapshot
  std::thread thread_ CAIRN_GUARDED_BY(mu_);  // writes job_
  uint64_t written_ CAIRN_GUARDED_BY(mu_) = 0;  // databases synced
  bool prepared_once_ CAIRN_GUARDED_BY(mu_) = false;  // a snapshot was prepared: no more buffers ahead
  std::thread ahead_ CAIRN_GUARDED_BY(mu_);  // PrepareBuffersAhead's
  std::atomic<uint64_t> ahead_bytes_{0};
};

}  // namespace cairn
