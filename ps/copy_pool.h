// CopyPool: shard copies kept between snapshots, so that the next snapshot
// (or a rollback's staging) copies into memory already touched rather than
// first-touching fresh pages (10-25x slower in a VM). Costs one resident
// copy of the shards between snapshots; a pool that does not keep anything
// (keep = false) frees them instead.
//
// Thread-safe: the snapshot writer and restore both take and give back.
#pragma once

#include <mutex>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/snapshot/shard_copy.h"

namespace cairn {

class CopyPool {
 public:
  explicit CopyPool(bool keep) : keep_(keep) {}
  bool keeps() const { return keep_; }

  // Every copy kept (the pool is empty afterwards).
  std::vector<ShardCopy> Take() {
    MutexLock lock(mu_);
    return std::exchange(copies_, {});
  }
  // Keeps `copies` beside any already kept (or frees them).
  void Give(std::vector<ShardCopy> copies) {
    if (!keep_ || copies.empty()) return;
    MutexLock lock(mu_);
    for (ShardCopy& c : copies) copies_.push_back(std::move(c));
  }

 private:
  const bool keep_;
  Mutex mu_;
  std::vector<ShardCopy> copies_ CAIRN_GUARDED_BY(mu_);
};

}  // namespace cairn
