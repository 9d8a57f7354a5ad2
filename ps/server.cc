#include "ps/server.h"

#include <random>

#include "common/messages.h"
#include "common/snapshot/model_dir.h"
#include "ps/connections.h"
#include "ps/copy_pool.h"
#include "ps/data_path.h"
#include "ps/restorer.h"
#include "ps/shard_store.h"
#include "ps/snapshot_fence.h"
#include "ps/snapshot_writer.h"

namespace cairn {
namespace {

// A random non-zero id for this server process.
uint64_t RandomIncarnation() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

}  // namespace

// The parts, built in dependency order and torn down in reverse. Dispatch
// and the two small requests that read every part (Hello, Stats) live here.
class Server::Parts {
 public:
  Parts(EventLoop& loop, ServerOptions options)
      : options_(std::move(options)),
        incarnation_(RandomIncarnation()),
        pool_(options_.reuse_copy_buffers),
        data_(loop, table_, options_.index, options_.limits),
        writer_(table_, pool_, fence_, WriterOptions()),
        restorer_(table_, pool_, fence_, data_,
                  RestorerOptions{options_.index, options_.num_servers, options_.model_dir}) {}

  ~Parts() { Stop(); }

  // Restores (if asked to), then listens. Each request holds the parts
  // while it is dispatched.
  static StatusOr<std::shared_ptr<Parts>> Start(EventLoop& loop, ServerOptions options) {
    RETURN_IF_ERROR(options.auth.Check().WithContext("server " + std::to_string(options.index)));
    if (options.model_dir.empty()) options.model_dir = options.restore_dir;
    if (!options.restore_dir.empty()) {
      if (Status s = CheckOwnModelDir(options.model_dir, options.restore_dir, options.index); !s.ok()) {
        return InvalidArgument("restore_dir: " + s.message());
      }
    }
    auto parts = std::make_shared<Parts>(loop, std::move(options));
    std::weak_ptr<Parts> weak = parts;
    const ServerOptions& o = parts->options_;
    parts->connections_ = std::make_shared<Connections>(loop, o.index, o.limits, o.auth, o.connections,
                                                        [weak](Request r) {
                                                          if (auto p = weak.lock()) p->Dispatch(std::move(r));
                                                        });
    RETURN_IF_ERROR(parts->Listen());
    return parts;
  }

  Status Listen() {
    RETURN_IF_ERROR(restorer_.RestoreOnStart(options_.restore_dir));
    return connections_->Listen(options_.bind_address, options_.port);
  }

  void Stop() {
    if (connections_) connections_->Stop();
    writer_.Stop();
    restorer_.Stop();
  }

  Endpoint endpoint() const { return connections_->endpoint(); }  // once started

  ServerStats stats() const {
    ServerStats s;
    s.pushes_applied = data_.pushes_applied();
    s.pulls_served = data_.pulls_served();
    s.duplicate_pushes = data_.duplicate_pushes();
    s.ssp_reads_parked = data_.ssp_reads_parked();
    s.ssp_wait_seconds = data_.ssp_wait_seconds();
    const ConnectionStats& c = *connections_->stats();
    s.frames_rejected = c.frames_rejected.load();
    s.requests_failed = c.requests_failed.load();
    s.connections_accepted = c.connections_accepted.load();
    s.connections_refused = c.connections_refused.load();
    s.handshakes_failed = c.handshakes_failed.load();
    s.connections_timed_out = c.connections_timed_out.load();
    s.accept_errors = c.accept_errors.load();
    s.open_connections = connections_->open_connections();
    s.payload_bytes_reserved = connections_->payload_bytes_reserved();
    s.variables = table_.size();
    s.snapshots_written = writer_.snapshots_written();
    s.snapshot_buffers_ahead_bytes = writer_.buffers_prepared_bytes();
    const Restorer::Report r = restorer_.report();
    s.restores = r.restores;
    s.restored_step = r.restored_step;
    return s;
  }

 private:
  SnapshotWriterOptions WriterOptions() {
    SnapshotWriterOptions o;
    o.server_index = options_.index;
    o.model_dir = options_.model_dir;
    o.write = options_.snapshot;
    o.sync_step = [this] { return data_.sync_step(); };
    return o;
  }

  void Dispatch(Request r) {
    const uint16_t type = r.frame.header.type;
    const auto t = static_cast<FrameType>(type);
    if ((t == FrameType::kSnapshotPrepare || t == FrameType::kSnapshotWait || t == FrameType::kSnapshotRestore) &&
        !r.peer.may_control()) {
      return r.respond.Fail(PermissionDenied(std::string(FrameTypeName(type)) + " is for the chief or the operator; " +
                                             r.peer.ToString() + " asked for it"));
    }
    switch (t) {
      case FrameType::kHello: return HandleHello(r);
      case FrameType::kCreateVariables:
        data_.HandleCreate(r);
        return writer_.PrepareBuffersAhead();
      case FrameType::kPull: return data_.HandlePull(r);
      case FrameType::kPush: return data_.HandlePush(std::move(r));
      case FrameType::kSparsePull: return data_.HandleSparsePull(r);
      case FrameType::kStats: return HandleStats(r);
      case FrameType::kSnapshotPrepare: return writer_.HandlePrepare(r);
      case FrameType::kSnapshotWait: return writer_.HandleWait(r);
      case FrameType::kSnapshotRestore: return restorer_.HandleRestore(std::move(r));
      default: r.respond.Fail(InvalidArgument("a server does not accept frames of type " + std::to_string(type)));
    }
  }

  void HandleHello(const Request& r) {
    HelloRequest req;
    if (Status s = DecodeMessage(r.frame.control, &req, "Hello"); !s.ok()) return r.respond.Fail(s);
    // Cluster files that differ between processes (ServerOptions::cluster).
    if (!options_.cluster.empty() && !req.cluster.empty() && req.cluster != options_.cluster) {
      return r.respond.Fail(FailedPrecondition("worker " + std::to_string(req.worker_id) + "'s cluster file says " +
                                               req.cluster + ", server " + std::to_string(options_.index) +
                                               "'s says " + options_.cluster));
    }
    const Restorer::Report restore = restorer_.report();
    HelloReply out;
    out.server_index = options_.index;
    out.incarnation = incarnation_;
    out.variables = table_.size();
    out.restore_id = restore.restore_id;
    out.restored_step = restore.restored_step;
    out.restore_staged = restore.staged;
    out.sync_step = data_.sync_step();
    r.respond.Reply(EncodeMessage(out));
  }

  void HandleStats(const Request& r) {
    const ServerStats s = stats();
    r.respond.Reply(EncodeMessage(StatsReply{WireStatus{}, s.pushes_applied, s.pulls_served, s.frames_rejected,
                                             s.variables}));
  }

  // Constant after construction; members in construction order.
  const ServerOptions options_;
  const uint64_t incarnation_;
  ShardStore table_;  // thread-safe
  CopyPool pool_;
  SnapshotFence fence_;
  DataPath data_;
  SnapshotWriter writer_;
  Restorer restorer_;
  std::shared_ptr<Connections> connections_;  // set by Start, before any request
};

StatusOr<std::unique_ptr<Server>> Server::Start(EventLoop& loop, ServerOptions options) {
  ASSIGN_OR_RETURN(std::shared_ptr<Parts> parts, Parts::Start(loop, std::move(options)));
  return std::unique_ptr<Server>(new Server(std::move(parts)));
}

Server::Server(std::shared_ptr<Parts> parts) : parts_(std::move(parts)) {}
Server::~Server() { Stop(); }
Endpoint Server::endpoint() const { return parts_->endpoint(); }
ServerStats Server::stats() const { return parts_->stats(); }
void Server::Stop() { parts_->Stop(); }

}  // namespace cairn
