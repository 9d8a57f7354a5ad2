// Server: a parameter server. Accepts connections from workers, creates the
// shards they declare, serves pulls, and applies pushed gradients.
//
// Every frame is checked before use. A frame that is not a well-formed Cairn
// frame (bad magic, oversized, bad checksum, truncated) closes that one
// connection with a logged reason; a well-formed request with bad contents
// (unknown variable, wrong shape, malformed message) gets an error reply.
// Either way every other connection is served on.
//
// Snapshots: SnapshotPrepare copies the requested shards as one consistent
// cut (pushes wait for the copy, nothing else) and answers; a background
// thread then writes them to this server's database for that step, and
// SnapshotWait answers when it is synced. SnapshotRestore loads the shards
// this server holds from a committed snapshot, whatever the number of
// servers that wrote it, and replaces them only if every one read cleanly.
//
// Pushes are applied once: a push re-sent after a lost reply (same worker,
// client incarnation and sequence) gets the first copy's answer.
//
// Thread-safe. Handlers run on the EventLoop's threads; the EventLoop must
// outlive the Server.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/cluster_spec.h"
#include "common/event_loop.h"
#include "common/frame.h"
#include "common/status.h"
#include "ps/snapshot_store.h"

namespace cairn {

struct ServerOptions {
  int index = 0;                          // this server's index in the cluster (for logs)
  std::string bind_address = "127.0.0.1"; // address to listen on
  uint16_t port = 0;                      // 0: an ephemeral port chosen by the OS
  FrameLimits limits;                     // default: 4 MiB control, 1 GiB data per frame
  SnapshotWriteOptions snapshot;          // how snapshot databases are written
  // Restart recovery. If set and the directory holds a committed snapshot,
  // Start loads this server's shards from the newest one (as that snapshot
  // placed them on server `index` of `num_servers`) before it accepts a
  // connection; in sync mode the next round is the snapshot's step. A
  // missing directory or one without a committed snapshot starts empty.
  std::string restore_dir;
  int num_servers = 0;                    // the cluster's server count (required with restore_dir)
  // Keeps a snapshot's shard copies once written and copies the next
  // snapshot into them, so a snapshot stalls pushes for a memcpy rather than
  // for first-touching fresh memory (page faults: 10-25x slower in a VM). A
  // restore onto trained shards (a rollback) stages into the same buffers.
  // Costs one resident copy of the shards between snapshots.
  bool reuse_copy_buffers = true;
  // Standalone start-up check: this server's view of the cluster (see
  // HelloRequest::cluster; empty: not checked). A Hello with another view is
  // refused, naming both: a worker whose cluster file lists the servers in
  // another order, or another worker count, would use the wrong shards.
  std::string cluster;
};

struct ServerStats {
  uint64_t pushes_applied = 0;
  uint64_t pulls_served = 0;
  uint64_t frames_rejected = 0;     // connections closed for a malformed frame
  uint64_t requests_failed = 0;     // requests answered with an error
  uint64_t connections_accepted = 0;
  uint64_t variables = 0;
  uint64_t snapshots_written = 0;   // databases synced
  uint64_t restores = 0;            // restores completed
  uint64_t duplicate_pushes = 0;    // retried pushes answered without applying them again
  int64_t restored_step = -1;       // the snapshot step of the last restore (-1: none)
};

class Server {
 public:
  // Restores (see ServerOptions::restore_dir), binds and starts accepting.
  // Unavailable if the address cannot be bound; the restore's error if the
  // newest committed snapshot cannot be loaded.
  static StatusOr<std::unique_ptr<Server>> Start(EventLoop& loop, ServerOptions options);
  ~Server();  // Stop()

  // The address and port actually bound.
  Endpoint endpoint() const;
  ServerStats stats() const;
  // Stops accepting, closes every connection, and waits for a snapshot
  // write in progress to finish. Idempotent.
  void Stop();

 private:
  class Core;
  explicit Server(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace cairn
