#include "ps/restorer.h"

#include <chrono>
#include <map>
#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_reader.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

uint64_t RandomId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return "[" + s + "]";
}

Status CheckSlotsMatch(const std::string& name, const ShardCopy& c, const ManifestVariable& saved) {
  std::vector<std::string> mine;
  for (const SlotDef& d : c.slot_defs) mine.push_back(d.name);
  if (mine == saved.slots) return Status::OK();
  return FailedPrecondition("'" + name + "' has optimizer slots " + Join(mine) + " but the snapshot's '" +
                            saved.spec.name + "' was saved with " + Join(saved.slots) + " (optimizer '" +
                            saved.optimizer + "'); restore without slots to start the optimizer afresh");
}

}  // namespace

// A restore read and checked, not yet applied.
struct Restorer::Staged {
  SnapshotRestoreRequest request;
  std::vector<ShardCopy> copies;      // read into staging buffers, for Import
  std::vector<std::string> in_place;  // read straight into initial shards (Table::FillInitial)
  std::vector<SparseCopy> sparse;     // this server's rows of each restored sparse table, for ImportSparse
  SnapshotRestoreReply reply;         // shards and bytes of both
};

Restorer::Restorer(Table& table, CopyPool& pool, SnapshotFence& fence, DataPath& data, RestorerOptions options)
    : table_(table), pool_(pool), fence_(fence), data_(data), options_(options), thread_([this] { Run(); }) {}

Restorer::~Restorer() { Stop(); }

void Restorer::Stop() {
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Restorer::Report Restorer::report() const {
  MutexLock lock(mu_);
  return report_;
}

void Restorer::Run() {
  for (;;) {
    std::function<void()> task;
    {
      MutexLock lock(mu_);
      lock.Wait(wake_, [&]() CAIRN_REQUIRES(mu_) { return stopped_ || !queue_.empty(); });
      if (stopped_) break;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
  // Nothing applies a restore staged in place any more: give the shards back.
  if (staged_) Drop(staged_.get());
}

void Restorer::HandleRestore(Request r) {
  auto task = [this, r = std::move(r)] {
    SnapshotRestoreRequest req;
    Status s = DecodeMessage(r.frame.control, &req, "SnapshotRestore");
    if (s.ok() && req.variables.size() != req.saved_names.size()) {
      s = InvalidArgument("restore names " + std::to_string(req.variables.size()) + " variables but " +
                          std::to_string(req.saved_names.size()) + " saved names");
    }
    if (s.ok() && req.phase == RestorePhase::kStage) {
      s = CheckOwnModelDir(options_.model_dir, req.model_dir, options_.server_index);
    }
    if (!s.ok()) return r.respond.Fail(s);
    StatusOr<SnapshotRestoreReply> out = Phase(req);
    if (!out.ok()) return r.respond.Fail(out.status());
    r.respond.Reply(EncodeMessage(*out));
  };
  {
    MutexLock lock(mu_);
    if (!stopped_) {
      queue_.push_back(std::move(task));
      wake_.notify_one();
      return;
    }
  }
  r.respond.Fail(Cancelled("server stopping"));
}

void Restorer::SetStaged(std::unique_ptr<Staged> staged) {
  staged_ = std::move(staged);
  MutexLock lock(mu_);
  report_.staged = staged_ != nullptr;
}

// On the restore thread.
StatusOr<SnapshotRestoreReply> Restorer::Phase(const SnapshotRestoreRequest& req) {
  const auto start = Clock::now();
  fence_.BeginRestore();
  // Ends the fence unless shards filled in place wait for their apply.
  struct Fence {
    Restorer& r;
    ~Fence() {
      if (!r.staged_ || r.staged_->in_place.empty()) r.fence_.EndRestore();
    }
  } fence{*this};
  std::unique_ptr<Staged> staged = std::move(staged_);
  SetStaged(nullptr);
  if (req.phase == RestorePhase::kDiscard) {
    if (staged) Drop(staged.get());
    return SnapshotRestoreReply{};
  }
  if (req.phase == RestorePhase::kStage) {
    if (staged) Drop(staged.get());  // a stage that was never applied (its chief gone, say)
    staged = std::make_unique<Staged>();
    staged->request = req;
    RETURN_IF_ERROR(Read(staged.get()));
    staged->reply.seconds = SecondsSince(start);
    SnapshotRestoreReply out = staged->reply;
    SetStaged(std::move(staged));
    return out;
  }
  if (!staged || staged->request.step != req.step || staged->request.model_dir != req.model_dir) {
    if (staged) Drop(staged.get());
    return FailedPrecondition("server " + std::to_string(options_.server_index) +
                              " has no staged restore of snapshot " + std::to_string(req.step) +
                              " to apply (was it restarted?)");
  }
  RETURN_IF_ERROR(Apply(staged.get()));
  SnapshotRestoreReply out = staged->reply;
  out.seconds += SecondsSince(start);
  spdlog::info("server {}: restored {} shard(s) ({} in place), {:.1f} MiB from snapshot {} in {:.2f} s",
               options_.server_index, out.shards, staged->in_place.size(), out.bytes / 1048576.0, req.step,
               out.seconds);
  return out;
}

Status Restorer::RestoreOnStart(const std::string& dir) {
  if (dir.empty()) return Status::OK();
  const std::string me = "server " + std::to_string(options_.server_index);
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
  RETURN_IF_ERROR(data_.SetMode(m.mode));
  Staged staged;
  SnapshotRestoreRequest& req = staged.request;
  req.model_dir = dir;
  req.step = m.step;
  req.restore_id = RandomId();
  req.num_servers = options_.num_servers;
  if (m.mode.sync()) req.sync_step = m.global_step;
  for (const ManifestShard& ms : m.shards) {
    if (ms.server != options_.server_index) continue;
    const ManifestVariable* mv = m.FindVariable(ms.variable);
    if (!mv) return DataLoss("snapshot " + std::to_string(m.step) + " places unknown variable '" + ms.variable + "'");
    RETURN_IF_ERROR(table_.Create(ShardDecl{mv->spec, ms.row_begin, ms.row_end, m.optimizer}));
    req.variables.push_back(ms.variable);
    req.saved_names.push_back(ms.variable);
  }
  for (const ManifestSparseTable& t : m.sparse_tables) {
    RETURN_IF_ERROR(table_.CreateSparse(SparseTableDecl{t.spec, m.optimizer}));
    req.variables.push_back(t.spec.name);
    req.saved_names.push_back(t.spec.name);
  }
  RETURN_IF_ERROR(Read(&staged));
  RETURN_IF_ERROR(Apply(&staged));
  spdlog::info("{}: restored {} shard(s), {:.1f} MiB from snapshot {} in {} (global step {}) in {:.2f} s", me,
               staged.reply.shards, staged.reply.bytes / 1048576.0, m.step, dir, m.global_step, SecondsSince(start));
  return Status::OK();
}

Status Restorer::Apply(Staged* staged) {
  // Read checked every shape, so neither import fails in practice; the
  // sparse tables, checked whole first, go in after the shards.
  if (Status s = table_.Import(staged->copies); !s.ok()) {
    Drop(staged);
    return s;
  }
  if (Status s = table_.ImportSparse(staged->sparse); !s.ok()) {
    Drop(staged);
    return s;
  }
  staged->sparse.clear();
  table_.FinishRestore(staged->in_place, /*keep=*/true);
  pool_.Give(std::exchange(staged->copies, {}));
  const SnapshotRestoreRequest& req = staged->request;
  data_.Restored(req.step, req.sync_step);
  MutexLock lock(mu_);
  report_.restore_id = req.restore_id;
  report_.restored_step = req.step;
  ++report_.restores;
  return Status::OK();
}

// Undoes a restore that is not applied: shards filled in place are
// initialized again, and the staging buffers go back to the pool.
void Restorer::Drop(Staged* staged) {
  table_.FinishRestore(staged->in_place, /*keep=*/false);
  staged->in_place.clear();
  staged->sparse.clear();
  pool_.Give(std::exchange(staged->copies, {}));
}

// Reads every shard this server holds among the request's variables from
// the snapshot, verifying every checksum: shards that hold only their
// initial values are read in place, the others into staged copies. On an
// error nothing has changed.
Status Restorer::Read(Staged* staged) {
  const SnapshotRestoreRequest& req = staged->request;
  SnapshotRestoreReply* out = &staged->reply;
  ASSIGN_OR_RETURN(std::unique_ptr<SnapshotReader> reader, SnapshotReader::Open(req.model_dir, req.step));
  const SnapshotManifest& manifest = reader->manifest();
  // Checked whole before anything is read: which shards, and that they fit.
  std::map<std::string, std::string> saved_name_of;  // this server's shards only
  for (size_t i = 0; i < req.variables.size(); ++i) {
    const std::string& name = req.variables[i];
    const std::string& saved = req.saved_names[i];
    if (!table_.Holds(name)) continue;
    ASSIGN_OR_RETURN(ShardCopy c, table_.Describe(name));
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
  // The rows shard c owns, gathered from every saved shard that holds some.
  auto read_into = [&](ShardCopy& c) -> Status {
    const std::string& saved = saved_name_of.at(c.info.spec.name);
    const int64_t begin = c.info.row_begin, end = c.info.row_end;
    RETURN_IF_ERROR(reader->ReadRows(saved, 0, begin, end, c.values.raw(), c.values.byte_size()));
    for (size_t k = 0; k < c.slots.size(); ++k) {
      Tensor& slot = c.slots[k];
      const bool scalar = c.slot_defs[k].scalar;
      RETURN_IF_ERROR(reader->ReadRows(saved, static_cast<int>(1 + k), scalar ? 0 : begin, scalar ? 0 : end,
                                       slot.raw(), slot.byte_size()));
    }
    out->bytes += c.values.byte_size();
    for (const Tensor& slot : c.slots) out->bytes += slot.byte_size();
    return Status::OK();
  };
  std::vector<std::string> names;
  for (const auto& [name, saved] : saved_name_of) names.push_back(name);
  ASSIGN_OR_RETURN(staged->in_place, table_.FillInitial(names, req.slots, read_into));
  const std::set<std::string> in_place(staged->in_place.begin(), staged->in_place.end());
  std::vector<std::string> rest;
  for (const std::string& name : names) {
    if (!in_place.count(name)) rest.push_back(name);
  }
  // Staged into the last snapshot's copy buffers where they fit: memory
  // already touched, like the shards'. The buffers not needed stay spare.
  if (!rest.empty()) {
    std::vector<ShardCopy> unused;
    staged->copies = table_.AllocateCopies(rest, req.slots, pool_.Take(), &unused);
    pool_.Give(std::move(unused));
  }
  for (ShardCopy& c : staged->copies) {
    if (Status s = read_into(c); !s.ok()) {
      Drop(staged);
      return s;
    }
  }
  if (Status s = ReadSparse(*reader, staged); !s.ok()) {
    Drop(staged);
    return s;
  }
  out->shards = names.size() + staged->sparse.size();
  return Status::OK();
}

// The rows of each requested sparse table that this server holds in the
// current cluster, gathered from every database of the snapshot.
Status Restorer::ReadSparse(SnapshotReader& reader, Staged* staged) {
  const SnapshotRestoreRequest& req = staged->request;
  const int me = options_.server_index;
  const int servers = req.num_servers > 0 ? req.num_servers : options_.num_servers;
  for (size_t i = 0; i < req.variables.size(); ++i) {
    StatusOr<SparseTable*> found = table_.FindSparse(req.variables[i]);
    if (!found.ok()) continue;  // a dense variable, or not a table of this cluster
    if (me < 0 || me >= servers) {
      return InvalidArgument("server " + std::to_string(me) + " cannot route sparse table '" + req.variables[i] +
                             "' among " + std::to_string(servers) + " servers: the restore names no server count");
    }
    const SparseTable& table = **found;
    const std::string& name = req.variables[i];
    const std::string& saved = req.saved_names[i];
    const ManifestSparseTable* mt = reader.manifest().FindSparseTable(saved);
    if (!mt) return NotFound("snapshot " + std::to_string(req.step) + " has no sparse table '" + saved + "'");
    if (mt->spec.dim != table.spec().dim) {
      return InvalidArgument("sparse table '" + name + "' has dim " + std::to_string(table.spec().dim) +
                             " but the snapshot's '" + saved + "' has dim " + std::to_string(mt->spec.dim));
    }
    std::vector<std::string> mine;
    for (const SlotDef& d : table.slots()) mine.push_back(d.name);
    const bool with_slots = req.slots && !mine.empty();
    if (with_slots && mine != mt->slots) {
      return FailedPrecondition("sparse table '" + name + "' has optimizer slots " + Join(mine) +
                                " but the snapshot's '" + saved + "' was saved with " + Join(mt->slots) +
                                " (optimizer '" + mt->optimizer + "'); restore without slots to start them afresh");
    }
    ASSIGN_OR_RETURN(SparseCopy copy,
                     reader.ReadSparse(saved, SparseRouting{servers, me}));
    copy.spec = table.spec();
    copy.optimizer = table.optimizer_spec();
    copy.slot_defs = table.slots();
    if (!with_slots) {  // every row's slots start afresh
      const size_t n = copy.rows.size();
      copy.rows.slots.clear();
      for (size_t k = 0; k < table.slots().size(); ++k) {
        copy.rows.slots.emplace_back(n * table.SlotWidth(k), table.slots()[k].initial);
      }
    }
    staged->reply.bytes += copy.rows.ids.size() * sizeof(int64_t) + copy.rows.values.size() * sizeof(float);
    for (const std::vector<float>& slot : copy.rows.slots) staged->reply.bytes += slot.size() * sizeof(float);
    staged->sparse.push_back(std::move(copy));
  }
  return Status::OK();
}

}  // namespace cairn
