#include "ps/snapshot_writer.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <spdlog/spdlog.h>

#include "common/snapshot/model_dir.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The rows of the reported variables found among `copies` (int64 only, and
// small: counters and positions).
std::vector<ReportedRows> Reported(const std::vector<ShardCopy>& copies, const std::vector<std::string>& report) {
  std::vector<ReportedRows> out;
  for (const ShardCopy& c : copies) {
    if (std::find(report.begin(), report.end(), c.info.spec.name) == report.end()) continue;
    if (c.values.dtype() != DType::kInt64 || c.values.num_elements() > int64_t{ReportedRows::kMaxValues}) continue;
    const int64_t* v = c.values.data<int64_t>();
    out.push_back({c.info.spec.name, c.info.row_begin, std::vector<int64_t>(v, v + c.values.num_elements())});
  }
  return out;
}

}  // namespace

struct SnapshotWriter::Job {
  int64_t step = 0;
  // Guarded by the writer's mu_:
  bool done = false;
  Status status;
  SnapshotIoStats io;
  std::vector<std::function<void()>> waiters;
};

SnapshotWriter::SnapshotWriter(Table& table, CopyPool& pool, SnapshotFence& fence, SnapshotWriterOptions options)
    : table_(table), pool_(pool), fence_(fence), options_(std::move(options)) {}

SnapshotWriter::~SnapshotWriter() { Stop(); }

void SnapshotWriter::Stop() {
  std::thread thread, ahead;
  {
    MutexLock lock(mu_);
    stopped_ = true;
    thread.swap(thread_);
    ahead.swap(ahead_);
  }
  if (thread.joinable()) thread.join();
  if (ahead.joinable()) ahead.join();
}

void SnapshotWriter::PrepareBuffersAhead() {
  if (options_.model_dir.empty() || !pool_.keeps()) return;
  MutexLock lock(mu_);
  if (stopped_ || prepared_once_ || ahead_.joinable()) return;
  ahead_ = std::thread([this] {
    const auto start = Clock::now();
    std::vector<ShardCopy> unused;
    std::vector<ShardCopy> copies = table_.AllocateCopies(table_.Names(), /*with_slots=*/true, pool_.Take(), &unused);
    uint64_t bytes = 0;
    auto touch = [&bytes](Tensor& t) {
      if (t.byte_size() == 0) return;
      std::memset(t.raw(), 0, t.byte_size());
      bytes += t.byte_size();
    };
    for (ShardCopy& c : copies) {
      touch(c.values);
      for (Tensor& s : c.slots) touch(s);
    }
    pool_.Give(std::move(copies));
    pool_.Give(std::move(unused));
    ahead_bytes_ = bytes;
    // Debug only: this thread ends at no moment the server's owner controls
    // (ServerStats::snapshot_buffers_ahead_bytes says it is done).
    spdlog::debug("server {}: snapshot copy buffers ready ahead of the first snapshot: {:.1f} MiB in {:.0f} ms",
                 options_.server_index, bytes / 1048576.0, SecondsSince(start) * 1e3);
  });
}

uint64_t SnapshotWriter::buffers_prepared_bytes() const { return ahead_bytes_.load(); }

uint64_t SnapshotWriter::snapshots_written() const {
  MutexLock lock(mu_);
  return written_;
}

void SnapshotWriter::HandlePrepare(const Request& r) {
  SnapshotPrepareRequest req;
  Status s = DecodeMessage(r.frame.control, &req, "SnapshotPrepare");
  if (!s.ok()) return r.respond.Fail(s);
  StatusOr<SnapshotPrepareReply> out = Prepare(req);
  if (!out.ok()) return r.respond.Fail(out.status());
  r.respond.Reply(EncodeMessage(*out));
}

StatusOr<SnapshotPrepareReply> SnapshotWriter::Prepare(const SnapshotPrepareRequest& req) {
  const std::string me = "server " + std::to_string(options_.server_index);
  if (req.step < 0) return InvalidArgument("snapshot step " + std::to_string(req.step) + " is negative");
  if (req.model_dir.empty()) return InvalidArgument("snapshot " + std::to_string(req.step) + " names no model directory");
  RETURN_IF_ERROR(CheckOwnModelDir(options_.model_dir, req.model_dir, options_.server_index));
  {
    // Buffers being prepared ahead: wait for them rather than allocate beside them.
    std::thread ahead;
    {
      MutexLock lock(mu_);
      prepared_once_ = true;
      ahead.swap(ahead_);
    }
    if (ahead.joinable()) ahead.join();
  }
  RETURN_IF_ERROR(fence_.TryBeginCopy().WithContext(me));
  struct EndCopy {
    SnapshotFence& fence;
    ~EndCopy() { fence.EndCopy(); }
  } end_copy{fence_};
  MutexLock lock(mu_);
  if (stopped_) return Cancelled("server stopping");
  if (job_ && !job_->done) {
    return FailedPrecondition(me + " is still writing snapshot " + std::to_string(job_->step));
  }
  const int64_t at = options_.sync_step();
  if (at >= 0 && at != req.step) {
    return FailedPrecondition(me + " is at sync step " + std::to_string(at) + ", not at snapshot " +
                              std::to_string(req.step) + "'s (was it restarted?)");
  }
  const auto start = Clock::now();
  // job_ is done, so its thread has handed its copies back to the pool.
  ExportOptions cut;
  cut.reuse = pool_.Take();
  auto sparse = std::make_shared<std::vector<SparseCut>>();
  auto copies = std::make_shared<std::vector<ShardCopy>>(table_.Export(req.names, std::move(cut), sparse.get()));
  options_.write.env.Reach("server.after_copy");
  SnapshotPrepareReply out;
  out.copy_seconds = SecondsSince(start);
  out.shards = copies->size();
  for (const ShardCopy& c : *copies) {
    out.bytes += c.values.byte_size();
    for (const Tensor& t : c.slots) out.bytes += t.byte_size();
  }
  out.reported = Reported(*copies, req.report);
  for (const SparseCut& t : *sparse) {
    out.sparse.push_back({t.table->spec().name, options_.server_index, t.rows()});
    out.bytes += t.bytes();
  }
  if (thread_.joinable()) thread_.join();  // finished: job_->done
  job_ = std::make_shared<Job>();
  job_->step = req.step;
  thread_ = std::thread([this, job = job_, copies, sparse, dir = req.model_dir] { Write(job, copies, sparse, dir); });
  spdlog::info("{}: snapshot {}: copied {} shard(s), {:.1f} MiB in {:.1f} ms; writing in the background", me,
               req.step, out.shards, out.bytes / 1048576.0, out.copy_seconds * 1e3);
  return out;
}

// On the writer's thread: everything that touches the disk.
void SnapshotWriter::Write(const std::shared_ptr<Job>& job, std::shared_ptr<std::vector<ShardCopy>> copies,
                           std::shared_ptr<std::vector<SparseCut>> sparse, const std::string& model_dir) {
  const StorageEnv& env = options_.write.env;
  const std::string db_path = ServerDbPath(model_dir, job->step, options_.server_index);
  SnapshotIoStats io;
  env.Reach("server.before_write");
  auto write = [&]() -> Status {
    std::error_code ec;
    // A committed step is never written again; a database left by an
    // attempt that never committed (a crash) is removed first.
    if (std::filesystem::exists(ManifestPath(model_dir, job->step), ec)) {
      return AlreadyExists("snapshot " + std::to_string(job->step) + " is already committed in " + model_dir);
    }
    RETURN_IF_ERROR(env.file_system().CreateDirs(SnapshotDirPath(model_dir, job->step)));
    if (std::filesystem::exists(db_path, ec)) {
      spdlog::warn("server {}: removing {} left by an uncommitted attempt", options_.server_index, db_path);
      RETURN_IF_ERROR(env.file_system().RemoveAll(db_path));
    }
    // The sparse tables' records are sorted here, off the event loop.
    std::vector<SparseCopy> tables;
    for (const SparseCut& cut : *sparse) tables.push_back(cut.Finish());
    sparse->clear();
    Status s = WriteServerSnapshot(db_path, job->step, *copies, tables, options_.write, &io);
    // A failed write leaves nothing that could pass for a database.
    if (!s.ok()) (void)env.file_system().RemoveAll(db_path);
    return s;
  };
  const Status s = write();
  // Written: the next Export may overwrite them. Handed back before the job
  // is done, which is what lets the next prepare start.
  pool_.Give(std::move(*copies));
  copies->clear();
  sparse->clear();
  env.Reach("server.after_write");
  Finish(job, s, io);
}

void SnapshotWriter::Finish(const std::shared_ptr<Job>& job, const Status& s, const SnapshotIoStats& io) {
  std::vector<std::function<void()>> waiters;
  {
    MutexLock lock(mu_);
    job->done = true;
    job->status = s;
    job->io = io;
    waiters.swap(job->waiters);
    if (s.ok()) ++written_;
  }
  if (s.ok()) {
    spdlog::info("server {}: snapshot {}: {:.1f} MiB synced in {:.2f} s ({:.0f} MB/s)", options_.server_index,
                 job->step, io.bytes / 1048576.0, io.seconds, io.seconds > 0 ? io.bytes / io.seconds / 1e6 : 0.0);
  } else {
    spdlog::error("server {}: snapshot {} failed: {}", options_.server_index, job->step, s.ToString());
  }
  for (auto& w : waiters) w();
}

void SnapshotWriter::HandleWait(const Request& r) {
  const Responder respond = r.respond;
  auto answer = [respond](SnapshotWaitReply out) {
    if (out.status.code != 0) return respond.Fail(out.status.ToStatus());
    respond.Reply(EncodeMessage(out));
  };
  SnapshotWaitRequest req;
  Status s = DecodeMessage(r.frame.control, &req, "SnapshotWait");
  if (!s.ok()) return answer(SnapshotWaitReply{WireStatus::From(s)});
  std::shared_ptr<Job> job;
  {
    MutexLock lock(mu_);
    if (job_ && job_->step == req.step) job = job_;
  }
  if (!job) {
    return answer(SnapshotWaitReply{WireStatus::From(
        NotFound("server " + std::to_string(options_.server_index) + " has no snapshot " + std::to_string(req.step) +
                 " in progress (was it restarted?)"))});
  }
  auto ready = [job, answer] {
    // Runs with the job done; its fields no longer change.
    answer(SnapshotWaitReply{WireStatus::From(job->status), job->io.bytes, job->io.seconds});
  };
  {
    MutexLock lock(mu_);
    if (!job->done) return job->waiters.push_back(ready);
  }
  ready();
}

}  // namespace cairn
