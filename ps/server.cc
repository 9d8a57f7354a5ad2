#include "ps/server.h"

#include <cmath>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <thread>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include "common/crash_point.h"
#include "common/frame_socket.h"
#include "common/messages.h"
#include "ps/model_dir.h"
#include "ps/push_log.h"
#include "ps/shard_store.h"
#include "ps/snapshot_store.h"
#include "ps/sync_steps.h"

namespace cairn {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kDataAlignment = 64;
uint64_t AlignUp(uint64_t n) { return (n + kDataAlignment - 1) / kDataAlignment * kDataAlignment; }
const uint8_t kPad[kDataAlignment] = {};

// A random non-zero id (server incarnations, restore ids).
uint64_t RandomId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

OutFrame Reply(const InFrame& request, std::string control) {
  OutFrame reply;
  reply.type = request.header.type | 0x8000;
  reply.request_id = request.header.request_id;
  reply.control = std::move(control);
  return reply;
}

}  // namespace

class Server::Core : public std::enable_shared_from_this<Core> {
 public:
  Core(EventLoop& loop, ServerOptions options)
      : loop_(loop),
        options_(std::move(options)),
        acceptor_(asio::make_strand(loop.io())),
        accept_timer_(acceptor_.get_executor()),
        incarnation_(RandomId()) {}

  // Loads this server's shards from the newest committed snapshot in
  // options_.restore_dir, as that snapshot placed them (before Listen, so no
  // request sees a half-restored server).
  Status RestoreOnStart() {
    const std::string& dir = options_.restore_dir;
    if (dir.empty()) return Status::OK();
    const std::string me = "server " + std::to_string(options_.index);
    if (Status s = CheckModelDir(dir); !s.ok()) {
      if (s.code() != StatusCode::kNotFound) return s.WithContext(me + " restoring on start");
      spdlog::info("{}: no model directory {} yet: starting empty", me, dir);
      return Status::OK();
    }
    StatusOr<int64_t> latest = LatestCommittedStep(dir);
    if (!latest.ok()) {
      if (latest.status().code() != StatusCode::kNotFound) return latest.status().WithContext(me + " restoring on start");
      spdlog::info("{}: no committed snapshot in {}: starting empty", me, dir);
      return Status::OK();
    }
    const auto start = Clock::now();
    ASSIGN_OR_RETURN(SnapshotManifest m, ReadManifest(dir, *latest));
    if (m.num_servers != options_.num_servers) {
      return FailedPrecondition(me + " cannot restore its shards from snapshot " + std::to_string(m.step) + " in " +
                                dir + ": it was written by " + std::to_string(m.num_servers) +
                                " servers and this cluster has " + std::to_string(options_.num_servers) +
                                " (restart the whole job to restore onto a different server count)");
    }
    RETURN_IF_ERROR(SetMode(m.mode));
    SnapshotRestoreRequest req;
    req.model_dir = dir;
    req.step = m.step;
    req.restore_id = RandomId();
    if (m.mode.consistency == "sync") req.sync_step = m.global_step;
    for (const ManifestShard& ms : m.shards) {
      if (ms.server != options_.index) continue;
      const ManifestVariable* mv = m.FindVariable(ms.variable);
      if (!mv) return DataLoss("snapshot " + std::to_string(m.step) + " places unknown variable '" + ms.variable + "'");
      RETURN_IF_ERROR(store_.Create(ShardDecl{mv->spec, ms.row_begin, ms.row_end, m.optimizer}));
      req.variables.push_back(ms.variable);
      req.saved_names.push_back(ms.variable);
    }
    StagedRestore restore;
    restore.request = req;
    RETURN_IF_ERROR(ReadRestore(&restore));
    RETURN_IF_ERROR(ApplyStaged(&restore));
    spdlog::info("{}: restored {} shard(s), {:.1f} MiB from snapshot {} in {} (global step {}) in {:.2f} s", me,
                 restore.reply.shards, restore.reply.bytes / 1048576.0, m.step, dir, m.global_step,
                 std::chrono::duration<double>(Clock::now() - start).count());
    return Status::OK();
  }

  Status Listen() {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(options_.bind_address, ec);
    if (ec) return InvalidArgument("bind address '" + options_.bind_address + "' is not an IP address");
    tcp::endpoint ep(address, options_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Unavailable("server " + std::to_string(options_.index) + " cannot listen on " + options_.bind_address +
                         ":" + std::to_string(options_.port) + ": " + ec.message());
    }
    auto local = acceptor_.local_endpoint(ec);
    endpoint_ = Endpoint{local.address().to_string(), local.port()};
    Accept();
    return Status::OK();
  }

  Endpoint endpoint() const { return endpoint_; }

  ServerStats stats() const {
    ServerStats s;
    s.pushes_applied = pushes_applied_.load();
    s.pulls_served = pulls_served_.load();
    s.frames_rejected = frames_rejected_.load();
    s.requests_failed = requests_failed_.load();
    s.connections_accepted = connections_accepted_.load();
    s.variables = store_.size();
    s.snapshots_written = snapshots_written_.load();
    s.restores = restores_.load();
    s.duplicate_pushes = duplicate_pushes_.load();
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    s.restored_step = restored_step_;
    return s;
  }

  void Stop() {
    std::set<std::shared_ptr<FrameSocket>> connections;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
      connections.swap(connections_);
    }
    // The port is free once Stop returns (a replacement may bind it at
    // once). The close runs on the acceptor's strand; if no loop thread gets
    // to it within 5 s (Stop called from the only one, say), it still
    // happens, just later.
    auto closed = std::make_shared<std::promise<void>>();
    std::future<void> done = closed->get_future();
    asio::dispatch(acceptor_.get_executor(), [self = shared_from_this(), closed] {
      boost::system::error_code ignored;
      self->acceptor_.close(ignored);
      self->accept_timer_.cancel();
      closed->set_value();
    });
    done.wait_for(std::chrono::seconds(5));
    for (auto& c : connections) c->Close(Cancelled("server stopping"));
    std::thread writer;
    {
      std::lock_guard<std::mutex> lock(snapshot_mu_);
      writer.swap(writer_);
    }
    if (writer.joinable()) writer.join();
  }

 private:
  void Accept() {
    acceptor_.async_accept(asio::make_strand(loop_.io()), [self = shared_from_this()](
                                                               const boost::system::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        self->Adopt(std::move(socket));
        return self->AcceptAgain(std::chrono::milliseconds(0));
      }
      // Out of file descriptors, say: retrying at once would spin a core.
      spdlog::warn("server {}: accept failed: {}; retrying in 100 ms", self->options_.index, ec.message());
      self->AcceptAgain(std::chrono::milliseconds(100));
    });
  }

  void AcceptAgain(std::chrono::milliseconds delay) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
    }
    if (delay.count() == 0) return Accept();
    accept_timer_.expires_after(delay);
    accept_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->AcceptAgain(std::chrono::milliseconds(0));
    });
  }

  void Adopt(tcp::socket socket) {
    auto conn = std::make_shared<FrameSocket>(std::move(socket), options_.limits);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      connections_.insert(conn);
    }
    ++connections_accepted_;
    std::weak_ptr<FrameSocket> weak_conn = conn;
    conn->Start(
        [self = shared_from_this(), weak_conn](InFrame frame) {
          // Handlers may be heavy (an optimizer step over a large shard): run
          // them off the connection's strand so its next read can start.
          asio::post(self->loop_.io(), [self, weak_conn, frame = std::move(frame)]() mutable {
            if (auto c = weak_conn.lock()) self->Handle(c, std::move(frame));
          });
        },
        [self = shared_from_this(), weak_conn](const Status& reason) {
          auto c = weak_conn.lock();
          if (reason.code() == StatusCode::kDataLoss || reason.code() == StatusCode::kInvalidArgument ||
              reason.code() == StatusCode::kOutOfRange) {
            ++self->frames_rejected_;
            spdlog::warn("server {}: dropped connection: {}", self->options_.index, reason.message());
          }
          if (c) {
            std::lock_guard<std::mutex> lock(self->mu_);
            self->connections_.erase(c);
          }
        });
  }

  void Handle(const std::shared_ptr<FrameSocket>& conn, InFrame frame) {
    const uint16_t type = frame.header.type;
    OutFrame reply;
    Status status;
    switch (static_cast<FrameType>(type)) {
      case FrameType::kHello: status = HandleHello(frame, &reply); break;
      case FrameType::kCreateVariables: status = HandleCreate(frame, &reply); break;
      case FrameType::kPull: return HandlePull(conn, frame);
      case FrameType::kPush: return HandlePush(conn, std::move(frame));
      case FrameType::kStats: status = HandleStats(frame, &reply); break;
      case FrameType::kSnapshotPrepare: status = HandleSnapshotPrepare(frame, &reply); break;
      case FrameType::kSnapshotWait: return HandleSnapshotWait(conn, std::move(frame));
      case FrameType::kSnapshotRestore: status = HandleSnapshotRestore(frame, &reply); break;
      default: status = InvalidArgument("a server does not accept frames of type " + std::to_string(type));
    }
    if (!status.ok()) reply = ErrorReply(*conn, frame, status);
    reply.Seal();
    conn->Send(std::move(reply));
  }

  OutFrame ErrorReply(const FrameSocket& conn, const InFrame& frame, const Status& status) {
    ++requests_failed_;
    spdlog::warn("server {}: {} from {} failed: {}", options_.index, FrameTypeName(frame.header.type), conn.peer(),
                 status.ToString());
    return Reply(frame, EncodeMessage(StatusReply{WireStatus::From(status)}));
  }

  // Answers a request later (a sync push waits for its step); safe to call
  // after the connection has gone.
  SyncSteps::Reply LaterReply(const std::shared_ptr<FrameSocket>& conn, const InFrame& frame) {
    std::weak_ptr<FrameSocket> weak = conn;
    FrameHeader header = frame.header;
    return [self = shared_from_this(), weak, header](const Status& status) {
      auto c = weak.lock();
      if (!c) return;
      InFrame stub;
      stub.header = header;
      OutFrame reply = status.ok() ? Reply(stub, EncodeMessage(StatusReply{})) : self->ErrorReply(*c, stub, status);
      reply.Seal();
      c->Send(std::move(reply));
    };
  }

  Status HandleHello(const InFrame& frame, OutFrame* reply) {
    HelloRequest req;
    RETURN_IF_ERROR(DecodeMessage(frame.control, &req, "Hello"));
    // Cluster files that differ between processes (ServerOptions::cluster).
    if (!options_.cluster.empty() && !req.cluster.empty() && req.cluster != options_.cluster) {
      return FailedPrecondition("worker " + std::to_string(req.worker_id) + "'s cluster file says " + req.cluster +
                                ", server " + std::to_string(options_.index) + "'s says " + options_.cluster);
    }
    HelloReply out;
    out.server_index = options_.index;
    out.incarnation = incarnation_;
    out.variables = store_.size();
    {
      std::lock_guard<std::mutex> lock(snapshot_mu_);
      out.restore_id = restore_id_;
      out.restored_step = restored_step_;
      out.restore_staged = staged_ != nullptr;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (sync_) out.sync_step = sync_->step();
    }
    *reply = Reply(frame, EncodeMessage(out));
    return Status::OK();
  }

  Status HandleCreate(const InFrame& frame, OutFrame* reply) {
    CreateRequest req;
    RETURN_IF_ERROR(DecodeMessage(frame.control, &req, "CreateVariables"));
    RETURN_IF_ERROR(SetMode(req.mode));
    for (const ShardDecl& decl : req.shards) RETURN_IF_ERROR(store_.Create(decl));
    *reply = Reply(frame, EncodeMessage(StatusReply{}));
    return Status::OK();
  }

  // The first CreateVariables fixes the training mode; later ones must agree.
  Status SetMode(const TrainingMode& mode) {
    if (mode.consistency != "async" && mode.consistency != "sync") {
      return InvalidArgument("unknown consistency '" + mode.consistency + "' (async or sync)");
    }
    if (mode.missing_workers != "fail" && mode.missing_workers != "continue") {
      return InvalidArgument("unknown missing_workers '" + mode.missing_workers + "' (fail or continue)");
    }
    if (mode.num_workers < 1 || mode.num_workers > 65536 || mode.sync_timeout_ms < 1) {
      return InvalidArgument("training mode needs 1..65536 workers and a positive sync timeout");
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (mode_) {
      if (*mode_ == mode) return Status::OK();
      return FailedPrecondition("server " + std::to_string(options_.index) + " trains " + mode_->consistency +
                                " with " + std::to_string(mode_->num_workers) + " workers; a client asked for " +
                                mode.consistency + " with " + std::to_string(mode.num_workers));
    }
    mode_ = mode;
    if (mode.consistency == "sync") sync_ = std::make_shared<SyncSteps>(loop_.io(), &store_, mode, options_.index);
    return Status::OK();
  }

  // Sends the reply itself, so that a large one is hashed after the send is
  // queued: the hash job, posted after it, runs off the connection's strand
  // while the strand writes all but the reply's tail (held back until the
  // PendingChecksum is set). With one loop thread the job runs once that bulk
  // is written, while the peer reads it; with more, the two run at once.
  // Either way no pass over the values comes before the first write.
  void HandlePull(const std::shared_ptr<FrameSocket>& conn, const InFrame& frame) {
    OutFrame reply;
    Status status = FillPullReply(frame, &reply);
    if (!status.ok()) reply = ErrorReply(*conn, frame, status);
    reply.Seal();
    if (reply.data_len() < kParallelChecksumBytes) return conn->Send(std::move(reply));
    auto checksum = std::make_shared<PendingChecksum>();
    reply.pending_checksum = checksum;
    // Shares the values' buffers (keepalive), which nothing writes (ReadShared).
    auto sealed = std::make_shared<const OutFrame>(reply);
    conn->Send(std::move(reply));
    asio::post(loop_.io(), [checksum, sealed] { checksum->Set(sealed->Checksum()); });
  }

  // The reply's values are the shards' own buffers, not copies (ReadShared).
  Status FillPullReply(const InFrame& frame, OutFrame* reply) {
    PullRequest req;
    RETURN_IF_ERROR(DecodeMessage(frame.control, &req, "Pull"));
    PullReply out;
    std::vector<Tensor> values;
    uint64_t offset = 0;
    for (const std::string& name : req.names) {
      ShardInfo info;
      ASSIGN_OR_RETURN(Tensor value, store_.ReadShared(name, &info));
      out.tensors.push_back(TensorDesc{name, value.dtype(), value.shape(), info.row_begin, offset, value.byte_size()});
      offset = AlignUp(offset + value.byte_size());
      values.push_back(std::move(value));
    }
    *reply = Reply(frame, EncodeMessage(out));
    uint64_t written = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      const TensorDesc& d = out.tensors[i];
      if (d.offset > written) reply->data.push_back(ByteSpan{kPad, d.offset - written});
      reply->data.push_back(ByteSpan{values[i].raw(), values[i].byte_size()});
      reply->keepalive.push_back(values[i].owner());
      written = d.offset + d.bytes;
    }
    ++pulls_served_;
    return Status::OK();
  }

  void HandlePush(const std::shared_ptr<FrameSocket>& conn, InFrame frame) {
    SyncSteps::Reply reply = LaterReply(conn, frame);
    PushRequest req;
    std::vector<Tensor> values;
    Status s = DecodePush(frame, &req, &values);
    if (!s.ok()) return reply(s);
    // A re-sent push (its first reply was lost with a connection) is
    // answered with the first copy's result instead of being applied again.
    const PushKey key{req.worker_id, req.incarnation, req.sequence};
    Status earlier;
    switch (push_log_.Begin(key, reply, &earlier)) {
      case PushLog::Verdict::kDone:
        ++duplicate_pushes_;
        return reply(earlier);
      case PushLog::Verdict::kWaiting:
        ++duplicate_pushes_;
        return;  // push_log_ answers it when the first copy is done
      case PushLog::Verdict::kApply:
        reply = [this, self = shared_from_this(), key, reply = std::move(reply)](const Status& st) {
          if (st.ok()) ++pushes_applied_;  // here, so that answers to retries do not count
          push_log_.Finish(key, st);
          reply(st);
        };
        break;
    }
    std::shared_ptr<SyncSteps> sync;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sync = sync_;
    }
    if (req.train_step && sync) {
      return sync->Arrive(SyncSteps::Arrival{std::move(req), std::move(values), std::move(reply)});
    }
    {
      ShardStore::UpdateScope update = store_.BeginUpdate();
      for (size_t i = 0; i < values.size() && s.ok(); ++i) {
        s = store_.Apply(req.grads[i].name, req.grads[i].update, values[i], req.learning_rate);
      }
      if (s.ok() && req.train_step && !req.global_step.empty()) store_.CountStep(req.global_step);
    }
    reply(s);
  }

  // Decodes a push and checks every tensor before any is applied: a push
  // applies whole or not at all.
  Status DecodePush(const InFrame& frame, PushRequest* req, std::vector<Tensor>* values) {
    RETURN_IF_ERROR(DecodeMessage(frame.control, req, "Push"));
    for (const TensorDesc& d : req->grads) {
      RETURN_IF_ERROR(ValidateTensorDesc(d, frame.data_len));
      Tensor t = ViewTensor(d, frame.payload, frame.data);
      RETURN_IF_ERROR(store_.CheckUpdate(d.name, d.update, t));
      values->push_back(std::move(t));
    }
    if (req->train_step && !req->global_step.empty()) RETURN_IF_ERROR(store_.CheckCountable(req->global_step));
    if (std::isnan(req->learning_rate) || req->learning_rate > 1e6) {
      return InvalidArgument("push learning rate " + std::to_string(req->learning_rate) + " is outside [0, 1e6]");
    }
    return Status::OK();
  }

  Status HandleStats(const InFrame& frame, OutFrame* reply) {
    ServerStats s = stats();
    StatsReply out{WireStatus{}, s.pushes_applied, s.pulls_served, s.frames_rejected, s.variables};
    *reply = Reply(frame, EncodeMessage(out));
    return Status::OK();
  }

  // --- Snapshots ---------------------------------------------------------

  // Copies the shards, answers, and leaves the write to a background thread.
  Status HandleSnapshotPrepare(const InFrame& frame, OutFrame* reply) {
    SnapshotPrepareRequest req;
    RETURN_IF_ERROR(DecodeMessage(frame.control, &req, "SnapshotPrepare"));
    if (req.step < 0) return InvalidArgument("snapshot step " + std::to_string(req.step) + " is negative");
    std::lock_guard<std::mutex> restoring(restore_mu_);  // no restore phase runs during the copy
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    if (stopped()) return Cancelled("server stopping");
    if (staged_ && !staged_->in_place.empty()) {
      return FailedPrecondition("server " + std::to_string(options_.index) + " has a restore of snapshot " +
                                std::to_string(staged_->request.step) +
                                " staged, not yet applied: snapshot after it is applied or discarded");
    }
    if (job_ && !job_->done) {
      return FailedPrecondition("server " + std::to_string(options_.index) + " is still writing snapshot " +
                                std::to_string(job_->step));
    }
    {
      // In sync mode every server is at exactly the snapshot's step while
      // the chief prepares it (the next round needs the chief's push). A
      // server at another step restarted from an older snapshot (and got
      // this request re-sent after reconnecting): its shards must not be
      // saved under this step's name.
      std::lock_guard<std::mutex> mode_lock(mu_);
      if (sync_ && sync_->step() != req.step) {
        return FailedPrecondition("server " + std::to_string(options_.index) + " is at sync step " +
                                  std::to_string(sync_->step()) + ", not at snapshot " + std::to_string(req.step) +
                                  "'s (was it restarted?)");
      }
    }
    const std::string db_path = ServerDbPath(req.model_dir, req.step, options_.index);
    RETURN_IF_ERROR(ClearStaleDatabase(req.model_dir, req.step, db_path));
    const auto start = Clock::now();
    // job_ is done, so its writer has handed its copies back (or freed them).
    auto copies = std::make_shared<std::vector<ShardCopy>>(store_.Export(req.names, std::move(spare_copies_)));
    spare_copies_.clear();
    CrashPoint("server.after_copy");
    SnapshotPrepareReply out;
    out.copy_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    out.shards = copies->size();
    for (const ShardCopy& c : *copies) {
      out.bytes += c.values.byte_size();
      for (const Tensor& s : c.slots) out.bytes += s.byte_size();
    }
    if (writer_.joinable()) writer_.join();  // finished: job_->done
    job_ = std::make_shared<SnapshotJob>();
    job_->step = req.step;
    writer_ = std::thread([self = shared_from_this(), job = job_, copies, db_path] {
      SnapshotIoStats io;
      CrashPoint("server.before_write");
      Status s = WriteServerSnapshot(db_path, job->step, *copies, self->options_.snapshot, &io);
      if (self->options_.reuse_copy_buffers) {
        // Written: the next Export may overwrite them. Handed back before the
        // job is done, which is what lets the next prepare start.
        std::lock_guard<std::mutex> lock(self->snapshot_mu_);
        self->spare_copies_ = std::move(*copies);
      }
      copies->clear();  // free the copy (if not kept) before anyone is told
      CrashPoint("server.after_write");
      self->FinishSnapshot(job, s, io);
    });
    spdlog::info("server {}: snapshot {}: copied {} shard(s), {:.1f} MiB in {:.1f} ms; writing {}", options_.index,
                 req.step, out.shards, out.bytes / 1048576.0, out.copy_seconds * 1e3, db_path);
    *reply = Reply(frame, EncodeMessage(out));
    return Status::OK();
  }

  // A database left by an attempt that never committed (a crash) is
  // removed; a committed step is never written again.
  Status ClearStaleDatabase(const std::string& model_dir, int64_t step, const std::string& db_path) {
    std::error_code ec;
    if (std::filesystem::exists(ManifestPath(model_dir, step), ec)) {
      return AlreadyExists("snapshot " + std::to_string(step) + " is already committed in " + model_dir);
    }
    std::filesystem::create_directories(SnapshotDirPath(model_dir, step), ec);
    if (ec) return Unavailable("cannot create " + SnapshotDirPath(model_dir, step) + ": " + ec.message());
    if (std::filesystem::exists(db_path, ec)) {
      spdlog::warn("server {}: removing {} left by an uncommitted attempt", options_.index, db_path);
      std::filesystem::remove_all(db_path, ec);
      if (ec) return Unavailable("cannot remove stale " + db_path + ": " + ec.message());
    }
    return Status::OK();
  }

  struct SnapshotJob {
    int64_t step = 0;
    bool done = false;                 // guarded by snapshot_mu_
    Status status;                     // guarded by snapshot_mu_
    SnapshotIoStats io;                // guarded by snapshot_mu_
    std::vector<std::function<void()>> waiters;  // guarded by snapshot_mu_
  };

  void FinishSnapshot(const std::shared_ptr<SnapshotJob>& job, const Status& s, const SnapshotIoStats& io) {
    std::vector<std::function<void()>> waiters;
    {
      std::lock_guard<std::mutex> lock(snapshot_mu_);
      job->done = true;
      job->status = s;
      job->io = io;
      waiters.swap(job->waiters);
    }
    if (s.ok()) {
      ++snapshots_written_;
      spdlog::info("server {}: snapshot {}: {:.1f} MiB synced in {:.2f} s ({:.0f} MB/s)", options_.index, job->step,
                   io.bytes / 1048576.0, io.seconds, io.seconds > 0 ? io.bytes / io.seconds / 1e6 : 0.0);
    } else {
      spdlog::error("server {}: snapshot {} failed: {}", options_.index, job->step, s.ToString());
    }
    for (auto& w : waiters) w();
  }

  void HandleSnapshotWait(const std::shared_ptr<FrameSocket>& conn, InFrame frame) {
    std::weak_ptr<FrameSocket> weak = conn;
    auto answer = [self = shared_from_this(), weak, header = frame.header](SnapshotWaitReply out) {
      auto c = weak.lock();
      if (!c) return;
      InFrame stub;
      stub.header = header;
      OutFrame reply = out.status.code == 0 ? Reply(stub, EncodeMessage(out))
                                            : self->ErrorReply(*c, stub, out.status.ToStatus());
      reply.Seal();
      c->Send(std::move(reply));
    };
    SnapshotWaitRequest req;
    Status s = DecodeMessage(frame.control, &req, "SnapshotWait");
    if (!s.ok()) return answer(SnapshotWaitReply{WireStatus::From(s)});
    std::unique_lock<std::mutex> lock(snapshot_mu_);
    if (!job_ || job_->step != req.step) {
      lock.unlock();
      return answer(SnapshotWaitReply{WireStatus::From(
          NotFound("server " + std::to_string(options_.index) + " has no snapshot " + std::to_string(req.step) +
                   " in progress (was it restarted?)"))});
    }
    std::shared_ptr<SnapshotJob> job = job_;
    auto ready = [job, answer] {
      // Runs with the job done; its fields no longer change.
      answer(SnapshotWaitReply{WireStatus::From(job->status), job->io.bytes, job->io.seconds});
    };
    if (!job->done) return job->waiters.push_back(ready);
    lock.unlock();
    ready();
  }

  Status HandleSnapshotRestore(const InFrame& frame, OutFrame* reply) {
    SnapshotRestoreRequest req;
    RETURN_IF_ERROR(DecodeMessage(frame.control, &req, "SnapshotRestore"));
    if (req.variables.size() != req.saved_names.size()) {
      return InvalidArgument("restore names " + std::to_string(req.variables.size()) + " variables but " +
                             std::to_string(req.saved_names.size()) + " saved names");
    }
    const auto start = Clock::now();
    // One restore phase at a time, and none during a snapshot's copy: a
    // discard waits for a stage still reading, then undoes it.
    std::lock_guard<std::mutex> restoring(restore_mu_);
    std::unique_ptr<StagedRestore> staged = TakeStaged();
    if (req.phase == RestorePhase::kDiscard) {
      if (staged) DropStaged(staged.get());
      *reply = Reply(frame, EncodeMessage(SnapshotRestoreReply{}));
      return Status::OK();
    }
    if (req.phase == RestorePhase::kStage) {
      if (staged) DropStaged(staged.get());  // a stage that was never applied (its chief gone, say)
      staged = std::make_unique<StagedRestore>();
      staged->request = req;
      RETURN_IF_ERROR(ReadRestore(staged.get()));
      staged->reply.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      *reply = Reply(frame, EncodeMessage(staged->reply));
      std::lock_guard<std::mutex> lock(snapshot_mu_);
      staged_ = std::move(staged);
      return Status::OK();
    }
    if (!staged || staged->request.step != req.step || staged->request.model_dir != req.model_dir) {
      if (staged) DropStaged(staged.get());
      return FailedPrecondition("server " + std::to_string(options_.index) + " has no staged restore of snapshot " +
                                std::to_string(req.step) + " to apply (was it restarted?)");
    }
    RETURN_IF_ERROR(ApplyStaged(staged.get()));
    SnapshotRestoreReply out = staged->reply;
    out.seconds += std::chrono::duration<double>(Clock::now() - start).count();
    spdlog::info("server {}: restored {} shard(s) ({} in place), {:.1f} MiB from snapshot {} in {:.2f} s",
                 options_.index, out.shards, staged->in_place.size(), out.bytes / 1048576.0, req.step, out.seconds);
    *reply = Reply(frame, EncodeMessage(out));
    return Status::OK();
  }

  // After a restore's shards are in: the sync round continues at the
  // snapshot's step, and Hello reports the restore.
  void ApplyRestored(const SnapshotRestoreRequest& req) {
    if (req.sync_step >= 0) {
      std::shared_ptr<SyncSteps> sync;
      {
        std::lock_guard<std::mutex> lock(mu_);
        sync = sync_;
      }
      if (sync) sync->Reset(req.sync_step);
    }
    {
      std::lock_guard<std::mutex> lock(snapshot_mu_);
      restore_id_ = req.restore_id;
      restored_step_ = req.step;
    }
    // A push retried from before the restore is applied to the restored
    // state, not answered from the log of a state that is gone.
    push_log_.Clear(Aborted("server " + std::to_string(options_.index) + " restored snapshot " +
                            std::to_string(req.step) + " while this push was applied"));
    ++restores_;
  }

  // A restore read and checked, not yet applied.
  struct StagedRestore {
    SnapshotRestoreRequest request;
    std::vector<ShardCopy> copies;      // read into staging buffers, for Import
    std::vector<std::string> in_place;  // read straight into initial shards (ShardStore::FillInitial)
    SnapshotRestoreReply reply;         // shards and bytes of both
  };

  std::unique_ptr<StagedRestore> TakeStaged() {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    return std::move(staged_);
  }

  Status ApplyStaged(StagedRestore* staged) {
    if (Status s = store_.Import(staged->copies); !s.ok()) {
      DropStaged(staged);
      return s;
    }
    store_.FinishRestore(staged->in_place, /*keep=*/true);
    KeepStagingBuffers(staged);
    ApplyRestored(staged->request);
    return Status::OK();
  }

  // Reads every shard this server holds among the request's variables from
  // the snapshot, verifying every checksum: shards that hold only their
  // initial values are read in place, the others into staged copies. On an
  // error nothing has changed.
  Status ReadRestore(StagedRestore* staged) {
    const SnapshotRestoreRequest& req = staged->request;
    SnapshotRestoreReply* out = &staged->reply;
    ASSIGN_OR_RETURN(SnapshotManifest manifest, ReadManifest(req.model_dir, req.step));
    std::map<int, std::unique_ptr<SnapshotDb>> dbs;  // opened as needed
    auto db_of = [&](int server) -> StatusOr<SnapshotDb*> {
      auto it = dbs.find(server);
      if (it != dbs.end()) return it->second.get();
      const std::string path = ServerDbPath(req.model_dir, req.step, server);
      ASSIGN_OR_RETURN(std::unique_ptr<SnapshotDb> db, OpenSnapshotDb(path));
      if (db->step() != req.step) {
        return DataLoss(path + " holds step " + std::to_string(db->step()) + ", not " + std::to_string(req.step));
      }
      return dbs.emplace(server, std::move(db)).first->second.get();
    };
    // Checked whole before anything is read: which shards, and that they fit.
    std::map<std::string, std::string> saved_name_of;  // this server's shards only
    for (size_t i = 0; i < req.variables.size(); ++i) {
      const std::string& name = req.variables[i];
      const std::string& saved = req.saved_names[i];
      if (!store_.Holds(name)) continue;
      ASSIGN_OR_RETURN(ShardCopy c, store_.Describe(name));
      const ManifestVariable* mv = manifest.FindVariable(saved);
      if (!mv) return NotFound("snapshot " + std::to_string(req.step) + " has no variable '" + saved + "'");
      const VariableSpec& spec = c.info.spec;
      if (mv->spec.shape != spec.shape || mv->spec.dtype != spec.dtype) {
        return InvalidArgument("'" + name + "' is " + DTypeName(spec.dtype) + ShapeString(spec.shape) +
                               " but the snapshot's '" + saved + "' is " + DTypeName(mv->spec.dtype) +
                               ShapeString(mv->spec.shape));
      }
      if (req.slots && !c.slot_defs.empty()) RETURN_IF_ERROR(CheckSlotsMatch(name, c, *mv));
      saved_name_of[name] = saved;
    }
    // Gathers the rows shard c owns, from every saved shard that overlaps,
    // into c.values and c.slots (if any).
    auto read_into = [&](ShardCopy& c) -> Status {
      const std::string& saved = saved_name_of.at(c.info.spec.name);
      const int64_t begin = c.info.row_begin, end = c.info.row_end;
      const uint64_t row_bytes = c.info.spec.row_bytes();
      int64_t covered = 0;
      bool scalars_read = false;
      for (const ManifestShard& ms : manifest.shards) {
        if (ms.variable != saved) continue;
        const int64_t lo = std::max(begin, ms.row_begin), hi = std::min(end, ms.row_end);
        if (lo >= hi) continue;
        ASSIGN_OR_RETURN(SnapshotDb * db, db_of(ms.server));
        RETURN_IF_ERROR(db->ReadRows(saved, 0, lo, hi, static_cast<char*>(c.values.raw()) + (lo - begin) * row_bytes,
                                     (hi - lo) * row_bytes));
        for (size_t k = 0; k < c.slots.size(); ++k) {
          Tensor& slot = c.slots[k];
          if (c.slot_defs[k].scalar) {
            // Identical on every shard of a variable (Adam's beta powers): any copy does.
            if (!scalars_read) RETURN_IF_ERROR(db->ReadRows(saved, 1 + k, 0, 0, slot.raw(), slot.byte_size()));
            continue;
          }
          const uint64_t slot_row = slot.byte_size() / std::max<int64_t>(1, end - begin);
          RETURN_IF_ERROR(db->ReadRows(saved, 1 + k, lo, hi, static_cast<char*>(slot.raw()) + (lo - begin) * slot_row,
                                       (hi - lo) * slot_row));
        }
        scalars_read = true;
        covered += hi - lo;
      }
      if (covered != end - begin) {
        return DataLoss("snapshot " + std::to_string(req.step) + " holds " + std::to_string(covered) + " of rows [" +
                        std::to_string(begin) + ", " + std::to_string(end) + ") of '" + saved +
                        "': its manifest and databases do not cover the variable");
      }
      out->bytes += c.values.byte_size();
      for (const Tensor& slot : c.slots) out->bytes += slot.byte_size();
      return Status::OK();
    };
    std::vector<std::string> names;
    for (const auto& [name, saved] : saved_name_of) names.push_back(name);
    ASSIGN_OR_RETURN(staged->in_place, store_.FillInitial(names, req.slots, read_into));
    const std::set<std::string> in_place(staged->in_place.begin(), staged->in_place.end());
    std::vector<std::string> rest;
    for (const std::string& name : names) {
      if (!in_place.count(name)) rest.push_back(name);
    }
    // Staged into the last snapshot's copy buffers where they fit: memory
    // already touched, like the shards'. The buffers not needed stay spare.
    if (!rest.empty()) {
      std::vector<ShardCopy> unused;
      staged->copies = store_.AllocateCopies(rest, req.slots, TakeSpareCopies(), &unused);
      KeepSpareCopies(std::move(unused));
    }
    for (ShardCopy& c : staged->copies) {
      if (Status s = read_into(c); !s.ok()) {
        DropStaged(staged);
        return s;
      }
    }
    out->shards = names.size();
    return Status::OK();
  }

  std::vector<ShardCopy> TakeSpareCopies() {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    return std::exchange(spare_copies_, {});
  }

  // Undoes a restore that is not applied: shards filled in place are
  // initialized again, and the staging buffers are kept for reuse.
  void DropStaged(StagedRestore* staged) {
    store_.FinishRestore(staged->in_place, /*keep=*/false);
    staged->in_place.clear();
    KeepStagingBuffers(staged);
  }

  void KeepStagingBuffers(StagedRestore* staged) { KeepSpareCopies(std::exchange(staged->copies, {})); }

  // Keeps `copies` as spare buffers for the next snapshot or restore, beside
  // any already kept.
  void KeepSpareCopies(std::vector<ShardCopy> copies) {
    if (!options_.reuse_copy_buffers || copies.empty()) return;
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    for (ShardCopy& c : copies) spare_copies_.push_back(std::move(c));
  }

  static Status CheckSlotsMatch(const std::string& name, const ShardCopy& c, const ManifestVariable& saved) {
    std::vector<std::string> mine;
    for (const SlotDef& d : c.slot_defs) mine.push_back(d.name);
    if (mine == saved.slots) return Status::OK();
    auto join = [](const std::vector<std::string>& v) {
      std::string s;
      for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
      return "[" + s + "]";
    };
    return FailedPrecondition("'" + name + "' has optimizer slots " + join(mine) + " but the snapshot's '" +
                              saved.spec.name + "' was saved with " + join(saved.slots) + " (optimizer '" +
                              saved.optimizer + "'); restore without slots to start the optimizer afresh");
  }

  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }

  // Constant after construction.
  EventLoop& loop_;
  const ServerOptions options_;
  Endpoint endpoint_;  // set by Listen, before any handler runs

  tcp::acceptor acceptor_;             // on its strand
  asio::steady_timer accept_timer_;    // on the acceptor's strand
  ShardStore store_;        // thread-safe

  std::mutex mu_;
  bool stopped_ = false;                                   // guarded by mu_
  std::optional<TrainingMode> mode_;                       // guarded by mu_; set by the first create
  std::shared_ptr<SyncSteps> sync_;                        // guarded by mu_; set in sync mode
  std::set<std::shared_ptr<FrameSocket>> connections_;    // guarded by mu_

  std::mutex restore_mu_;  // held through each restore phase and a snapshot's copy; before snapshot_mu_
  mutable std::mutex snapshot_mu_;
  std::shared_ptr<SnapshotJob> job_;   // guarded by snapshot_mu_: the latest snapshot
  std::thread writer_;                 // guarded by snapshot_mu_: writes job_
  std::vector<ShardCopy> spare_copies_;  // guarded by snapshot_mu_: a written job's copies, for the next Export
  std::unique_ptr<StagedRestore> staged_;  // guarded by snapshot_mu_: read, not yet applied
  uint64_t restore_id_ = 0;                // guarded by snapshot_mu_: of the last restore applied
  int64_t restored_step_ = -1;             // guarded by snapshot_mu_
  const uint64_t incarnation_;             // random, for this process's life
  PushLog push_log_;                       // thread-safe

  std::atomic<uint64_t> pushes_applied_{0}, pulls_served_{0}, frames_rejected_{0}, requests_failed_{0},
      connections_accepted_{0}, snapshots_written_{0}, restores_{0}, duplicate_pushes_{0};
};

StatusOr<std::unique_ptr<Server>> Server::Start(EventLoop& loop, ServerOptions options) {
  auto core = std::make_shared<Core>(loop, std::move(options));
  RETURN_IF_ERROR(core->RestoreOnStart());
  RETURN_IF_ERROR(core->Listen());
  return std::unique_ptr<Server>(new Server(std::move(core)));
}

Server::Server(std::shared_ptr<Core> core) : core_(std::move(core)) {}
Server::~Server() { Stop(); }
Endpoint Server::endpoint() const { return core_->endpoint(); }
ServerStats Server::stats() const { return core_->stats(); }
void Server::Stop() { core_->Stop(); }

}  // namespace cairn
