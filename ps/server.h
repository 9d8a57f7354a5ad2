// Server: a parameter server. Accepts connections from workers, creates the
// shards they declare, serves pulls, applies pushed gradients, and writes
// and restores its part of cluster snapshots.
//
// A server is a few parts, each owning its state and one mutex; the lock
// order is the call order between them:
//   Connections     accept, read frames, hand requests to Dispatch   ps/connections.h
//   DataPath        create, pull, push (sync rounds, push log)       ps/data_path.h
//   SnapshotWriter  the cut, then the database write on its thread   ps/snapshot_writer.h
//   Restorer        stage / apply / discard on its thread            ps/restorer.h
// and they reach variables only through the Table (ps/table.h; today the
// dense ShardStore). Disk work never runs on an event-loop thread, nor
// under a lock a push needs.
//
// Every frame is checked before use. A frame that is not a well-formed Cairn
// frame (bad magic, oversized, bad checksum, truncated) closes that one
// connection with a logged reason; a well-formed request with bad contents
// (unknown variable, wrong shape or rows, malformed message) gets an error
// reply. Either way every other connection is served on.
//
// Thread-safe. Handlers run on the EventLoop's threads; the EventLoop must
// outlive the Server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/cluster_spec.h"
#include "common/event_loop.h"
#include "common/frame.h"
#include "common/snapshot/snapshot_db.h"
#include "common/status.h"
#include "ps/connections.h"

namespace cairn {

struct ServerOptions {
  int index = 0;                          // this server's index in the cluster (for logs)
  std::string bind_address = "127.0.0.1"; // address to listen on
  uint16_t port = 0;                      // 0: an ephemeral port chosen by the OS
  FrameLimits limits;                     // default: 4 MiB control, 1 GiB data per frame
  // Who may connect: with the job's secret, peers that prove they hold it
  // (common/handshake.h); `insecure` accepts anyone. Start refuses neither.
  ServerAuth auth;
  ConnectionLimits connections;           // connection cap, deadlines, payload budget
  // The one directory this server writes snapshots to and restores from: a
  // request naming a directory neither it nor beneath it is refused. Empty:
  // restore_dir if set, else the server writes and restores no snapshots.
  std::string model_dir;
  SnapshotWriteOptions snapshot;          // how snapshot databases are written (file system, crash points)
  // Restart recovery. If set and the directory holds a committed snapshot,
  // Start loads this server's shards from the newest one (as that snapshot
  // placed them on server `index` of `num_servers`) before it accepts a
  // connection; in sync mode the next round is the snapshot's step. A
  // missing directory or one without a committed snapshot starts empty.
  // It must be model_dir or lie beneath it.
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
  uint64_t connections_refused = 0;   // over the connection cap
  uint64_t handshakes_failed = 0;     // closed before a frame was read
  uint64_t connections_timed_out = 0; // idle, or a frame not complete by its deadline
  uint64_t accept_errors = 0;         // accept() failed (out of descriptors, say); retried with back-off
  uint64_t open_connections = 0;      // now: serving or handshaking
  uint64_t payload_bytes_reserved = 0; // now: of the payload budget (ConnectionLimits::max_pending_payload_bytes)
  uint64_t variables = 0;
  uint64_t snapshots_written = 0;   // databases synced
  uint64_t restores = 0;            // restores completed
  uint64_t duplicate_pushes = 0;    // retried pushes answered without applying them again
  int64_t restored_step = -1;       // the snapshot step of the last restore (-1: none)
  uint64_t ssp_reads_parked = 0;    // ssp: reads that waited for the slowest worker
  double ssp_wait_seconds = 0;      // ssp: the time they waited, in all
  // Snapshot copy buffers allocated and touched ahead of the first snapshot
  // (0 until ready; SnapshotWriter::PrepareBuffersAhead).
  uint64_t snapshot_buffers_ahead_bytes = 0;
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
  // write or restore phase in progress to finish. Idempotent.
  void Stop();

 private:
  class Parts;
  explicit Server(std::shared_ptr<Parts> parts);
  // Shared with the requests being dispatched, so the parts outlive them.
  std::shared_ptr<Parts> parts_;
};

}  // namespace cairn
