// SnapshotFence: keeps a snapshot's copy and a restore apart. A snapshot
// must not save shards a restore has half filled, and a restore must not
// change shards while a copy reads them.
//
// The copy runs on an event-loop thread and must never wait for a restore
// (which reads the disk): TryBeginCopy refuses instead. A restore phase runs
// on the restore thread and may wait the few milliseconds a copy takes.
// A restore counts as in progress from BeginRestore until EndRestore, which
// Restorer calls only once no shard is left filled and unapplied.
//
// Thread-safe.
#pragma once

#include <condition_variable>
#include <mutex>

#include "common/mutex.h"
#include "common/status.h"

namespace cairn {

class SnapshotFence {
 public:
  // OK and a copy in progress, or FailedPrecondition if a restore is.
  Status TryBeginCopy() {
    MutexLock lock(mu_);
    if (restoring_) return FailedPrecondition("a restore is running or staged, not yet applied: snapshot after it is applied or discarded");
    ++copies_;
    return Status::OK();
  }
  void EndCopy() {
    MutexLock lock(mu_);
    --copies_;
    if (copies_ == 0) idle_.notify_all();
  }
  // Waits for copies in progress; new ones are refused until EndRestore.
  void BeginRestore() {
    MutexLock lock(mu_);
    restoring_ = true;
    lock.Wait(idle_, [&]() CAIRN_REQUIRES(mu_) { return copies_ == 0; });
  }
  void EndRestore() {
    MutexLock lock(mu_);
    restoring_ = false;
  }

 private:
  Mutex mu_;
  std::condition_variable idle_;
  int copies_ CAIRN_GUARDED_BY(mu_) = 0;
  bool restoring_ CAIRN_GUARDED_BY(mu_) = false;
};

}  // namespace cairn
