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

#include "common/snapshot/shard_copy.h"

namespace cairn {

class CopyPool {
 public:
  explicit CopyPool(bool keep) : keep_(keep) {}

  // Every copy kept (the pool is empty afterwards).
  std::vector<ShardCopy> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(copies_, {});
  }
  // Keeps `copies` beside any already kept (or frees them).
  void Give(std::vector<ShardCopy> copies) {
    if (!keep_ || copies.empty()) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (ShardCopy& c : copies) copies_.push_back(std::move(c));
  }

 private:
  const bool keep_;
  std::mutex mu_;
  std::vector<ShardCopy> copies_;  // guarded by mu_
};

}  // namespace cairn
