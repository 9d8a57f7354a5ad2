#include "worker/saver.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "worker/model.h"

namespace cairn {
namespace {

constexpr const char* kChiefReady = "cairn/chief_ready";
constexpr const char* kWorkerStatePrefix = "cairn/worker_state/";
constexpr const char* kGlobalStep = "global_step";

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
// Cairn's own bookkeeping: restored when both sides have it, never reported
// missing or unexpected (a job may change its number of workers).
bool Bookkeeping(const std::string& name) { return StartsWith(name, "cairn/"); }

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return "[" + s + "]";
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct SlotNames {
  std::string optimizer;
  std::vector<std::string> names;
  std::vector<bool> scalar;
};

StatusOr<SlotNames> SlotsOf(const VariableSpec& spec, const OptimizerSpec& optimizer) {
  SlotNames out;
  if (!spec.trainable) return out;
  ASSIGN_OR_RETURN(SlotTable table, SlotTableOf(optimizer));
  out.optimizer = table.name;
  for (const SlotDef& d : table.slots) {
    out.names.push_back(d.name);
    out.scalar.push_back(d.scalar);
  }
  return out;
}

}  // namespace

Saver::Saver(Session* session, PsClient* client, SaverOptions options)
    : session_(session), client_(client), options_(std::move(options)) {}

StatusOr<std::unique_ptr<Saver>> Saver::Create(Session* session, PsClient* client, SaverOptions options) {
  if (options.model_dir.empty()) return InvalidArgument("a Saver needs a model directory");
  if (!session->initialized()) return FailedPrecondition("a Saver needs an initialized session");
  std::unique_ptr<Saver> saver(new Saver(session, client, std::move(options)));
  RETURN_IF_ERROR(saver->Init());
  return saver;
}

Status Saver::Init() {
  specs_ = session_->graph().ServerVariables();
  std::sort(specs_.begin(), specs_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  sparse_specs_ = session_->graph().SparseTables();
  std::sort(sparse_specs_.begin(), sparse_specs_.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::set<std::string> all, tables;
  for (const VariableSpec& s : specs_) all.insert(s.name);
  for (const SparseTableSpec& t : sparse_specs_) tables.insert(t.name);
  if (options_.var_list.empty()) {
    for (const VariableSpec& s : specs_) {
      if (s.name != kChiefReady) saved_.push_back(s.name);
    }
    saved_sparse_.assign(tables.begin(), tables.end());
    return Status::OK();
  }
  std::vector<std::string> unknown;
  std::set<std::string> chosen;
  for (const std::string& name : options_.var_list) {
    if (tables.count(name)) {
      saved_sparse_.push_back(name);
      continue;
    }
    if (!all.count(name)) unknown.push_back(name);
    chosen.insert(name);
  }
  if (!unknown.empty()) return NotFound("Saver var_list names no global variable or sparse table " + Join(unknown));
  std::sort(saved_sparse_.begin(), saved_sparse_.end());
  saved_sparse_.erase(std::unique(saved_sparse_.begin(), saved_sparse_.end()), saved_sparse_.end());
  saved_.assign(chosen.begin(), chosen.end());
  // Say what a narrowed save leaves behind: state users expect a snapshot to keep.
  std::vector<std::string> non_trainable, counters, slots_of;
  for (const VariableSpec& s : specs_) {
    if (chosen.count(s.name) || s.name == kChiefReady) continue;
    if (s.trainable) {
      slots_of.push_back(s.name);
    } else if (s.dtype == DType::kInt64 && s.shape.empty()) {
      counters.push_back(s.name);
    } else {
      non_trainable.push_back(s.name);
    }
  }
  if (!non_trainable.empty() || !counters.empty() || !slots_of.empty()) {
    spdlog::warn("Saver: var_list saves {} of {} variables; it leaves out non-trainable variables {}, counters {}, "
                 "and trainable variables {} with their optimizer slots",
                 saved_.size(), all.size() - all.count(kChiefReady), Join(non_trainable), Join(counters),
                 Join(slots_of));
  }
  return Status::OK();
}

Status Saver::Begin(int64_t step) {
  if (pending_) {
    return FailedPrecondition("snapshot " + std::to_string(pending_->step) + " is still being written");
  }
  if (step < 0) return InvalidArgument("snapshot step " + std::to_string(step) + " is negative");
  RETURN_IF_ERROR(PrepareModelDir(options_.model_dir, options_.env));
  Pending p;
  p.step = step;
  p.start = std::chrono::steady_clock::now();
  SnapshotPrepareRequest req;
  req.step = step;
  req.model_dir = options_.model_dir;
  req.names = saved_;
  req.names.insert(req.names.end(), saved_sparse_.begin(), saved_sparse_.end());
  for (const std::string& name : saved_) {
    if (name == kGlobalStep || StartsWith(name, kWorkerStatePrefix)) req.report.push_back(name);
  }
  ASSIGN_OR_RETURN(SnapshotPrepareReply prepared, client_->SnapshotPrepare(req));
  p.stats.step = step;
  p.stats.copy_seconds = prepared.copy_seconds;
  p.stats.bytes = prepared.bytes;
  p.reported = std::move(prepared.reported);
  p.sparse = std::move(prepared.sparse);
  pending_ = std::move(p);
  options_.env.Reach("chief.after_prepare");
  return Status::OK();
}

StatusOr<SnapshotStats> Saver::Finish() {
  if (!pending_) return FailedPrecondition("Finish without Begin");
  Pending p = std::move(*pending_);
  pending_.reset();
  const int64_t step = p.step;
  auto fail = [&](const Status& s) {
    spdlog::error("snapshot {} was not committed: {}", step, s.ToString());
    return s;
  };
  StatusOr<SnapshotWaitReply> written = client_->SnapshotWait(step);
  if (!written.ok()) return fail(written.status());
  p.stats.write_seconds = written->write_seconds;

  SnapshotManifest m;
  m.step = step;
  m.global_step = step;
  m.num_servers = client_->num_servers();
  m.mode = session_->options().mode;
  m.optimizer = session_->options().optimizer;
  StatusOr<std::vector<WorkerState>> workers = WorkerStates(p.reported, &m.global_step);
  if (!workers.ok()) return fail(workers.status());
  m.workers = std::move(*workers);
  if (m.mode.sync() && m.global_step != step) {
    // A server that restarted while this snapshot was prepared copied an
    // older state: the servers' shards are not one step.
    return fail(DataLoss("the servers' global_step reads " + std::to_string(m.global_step) + " in snapshot " +
                         std::to_string(step) + ": a server restarted while it was taken"));
  }
  const std::set<std::string> saved(saved_.begin(), saved_.end());
  for (const VariableSpec& spec : specs_) {
    if (!saved.count(spec.name)) continue;
    StatusOr<SlotNames> slots = SlotsOf(spec, m.optimizer);
    if (!slots.ok()) return fail(slots.status());
    m.variables.push_back(ManifestVariable{spec, slots->optimizer, slots->names, slots->scalar});
    StatusOr<std::vector<ShardSlice>> slices = client_->placement().SlicesOf(spec.name);
    if (!slices.ok()) return fail(slices.status());
    for (const ShardSlice& s : *slices) m.shards.push_back(ManifestShard{spec.name, s.row_begin, s.row_end, s.server});
  }
  StatusOr<std::vector<ManifestSparseTable>> tables = SparseTablesOf(p.sparse, m.num_servers);
  if (!tables.ok()) return fail(tables.status());
  m.sparse_tables = std::move(*tables);
  for (const std::string& name : session_->CollectionNames()) m.collections[name] = session_->GetCollection(name);
  m.job_config = options_.job_config;
  m.bytes = written->bytes;
  m.created = UnixSeconds();
  options_.env.Reach("chief.before_commit");
  Status committed = CommitManifest(options_.model_dir, m, options_.env);
  if (!committed.ok()) return fail(committed);
  p.stats.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - p.start).count();
  spdlog::info("snapshot {} committed: {:.1f} MiB, training stalled {:.1f} ms for the copy, written in {:.2f} s",
               step, p.stats.bytes / 1048576.0, p.stats.copy_seconds * 1e3, p.stats.write_seconds);
  options_.env.Reach("chief.after_commit");
  StatusOr<std::vector<int64_t>> removed = ApplyRetention(options_.model_dir, options_.retention, options_.env);
  if (!removed.ok()) spdlog::warn("snapshot retention: {}", removed.status().ToString());
  return p.stats;
}

StatusOr<SnapshotStats> Saver::Save(int64_t step) {
  RETURN_IF_ERROR(Begin(step));
  return Finish();
}

// The manifest's sparse tables: specs and slots from the graph, rows per
// server from the prepare replies (every server reports every saved table).
StatusOr<std::vector<ManifestSparseTable>> Saver::SparseTablesOf(const std::vector<SparseRowCount>& counts,
                                                                 int num_servers) const {
  std::vector<ManifestSparseTable> out;
  for (const SparseTableSpec& spec : sparse_specs_) {
    if (!std::binary_search(saved_sparse_.begin(), saved_sparse_.end(), spec.name)) continue;
    ManifestSparseTable t;
    t.spec = spec;
    if (spec.trainable) {
      ASSIGN_OR_RETURN(SlotTable slots, SlotTableOf(session_->options().optimizer));
      t.optimizer = slots.name;
      for (const SlotDef& d : slots.slots) {
        t.slots.push_back(d.name);
        t.scalar_slots.push_back(d.scalar);
      }
    }
    t.rows_per_server.assign(num_servers, -1);
    for (const SparseRowCount& c : counts) {
      if (c.table != spec.name) continue;
      if (c.server < 0 || c.server >= num_servers || t.rows_per_server[c.server] != -1 || c.rows < 0) {
        return Internal("sparse table '" + spec.name + "': server " + std::to_string(c.server) +
                        " reported its rows twice, or out of range");
      }
      t.rows_per_server[c.server] = c.rows;
    }
    for (int s = 0; s < num_servers; ++s) {
      if (t.rows_per_server[s] < 0) {
        return Internal("server " + std::to_string(s) + " copied no part of sparse table '" + spec.name +
                        "' (was it declared there?)");
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

// The workers' states and global_step as the servers copied them (their
// prepare replies), so the manifest agrees with the weights. A variable
// split across servers arrives in pieces, put back together by row.
StatusOr<std::vector<WorkerState>> Saver::WorkerStates(const std::vector<ReportedRows>& reported,
                                                       int64_t* global_step) {
  std::map<std::string, std::map<int64_t, const std::vector<int64_t>*>> rows;  // name -> row_begin -> values
  for (const ReportedRows& r : reported) rows[r.name][r.row_begin] = &r.values;
  auto whole = [&](const std::string& name) {
    std::vector<int64_t> v;
    for (const auto& [row, values] : rows[name]) v.insert(v.end(), values->begin(), values->end());
    return v;
  };
  std::vector<WorkerState> out;
  for (const auto& [name, pieces] : rows) {
    const std::vector<int64_t> v = whole(name);
    if (name == kGlobalStep) {
      if (v.size() == 1) *global_step = v[0];
      continue;
    }
    if (!StartsWith(name, kWorkerStatePrefix)) continue;
    if (v.size() != 4) {
      return Internal("'" + name + "' came back from the servers with " + std::to_string(v.size()) +
                      " values, not int64[4]");
    }
    WorkerState w;
    w.worker = std::stoi(name.substr(std::string(kWorkerStatePrefix).size()));
    w.steps = v[0];
    w.epoch = v[1];
    w.step_in_epoch = v[2];
    w.seed = static_cast<uint64_t>(v[3]);
    out.push_back(w);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.worker < b.worker; });
  return out;
}

Status Saver::Validate(const SnapshotManifest& m, const RestoreOptions& o,
                       std::vector<std::pair<std::string, std::string>>* pairs) const {
  std::map<std::string, const VariableSpec*> mine;
  for (const VariableSpec& s : specs_) mine[s.name] = &s;
  std::vector<std::string> wanted;
  if (o.partial) {
    wanted = o.var_list;
    for (const auto& [current, saved] : o.name_map) wanted.push_back(current);
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    if (wanted.empty()) return InvalidArgument("a partial restore needs a var_list or a name_map");
  } else {
    wanted = saved_;
  }
  std::vector<std::string> problems;
  std::set<std::string> used;
  RETURN_IF_ERROR(ValidateSparse(m, o, wanted, pairs, &problems));
  for (const std::string& current : wanted) {
    if (std::binary_search(saved_sparse_.begin(), saved_sparse_.end(), current) ||
        std::any_of(sparse_specs_.begin(), sparse_specs_.end(), [&](const auto& t) { return t.name == current; })) {
      continue;  // ValidateSparse's
    }
    auto mapped = o.name_map.find(current);
    const std::string saved = mapped == o.name_map.end() ? current : mapped->second;
    auto it = mine.find(current);
    if (it == mine.end() || current == kChiefReady) {
      problems.push_back("not a global variable of this model: '" + current + "'");
      continue;
    }
    const VariableSpec& spec = *it->second;
    const ManifestVariable* mv = m.FindVariable(saved);
    if (!mv) {
      if (!(Bookkeeping(current) && !o.partial)) {
        problems.push_back("missing: '" + saved + "' is not in the snapshot" +
                           (saved != current ? " (wanted for '" + current + "')" : ""));
      }
      continue;
    }
    used.insert(saved);
    const std::string label = saved == current ? "'" + current + "'" : "'" + current + "' (from '" + saved + "')";
    if (mv->spec.dtype != spec.dtype || mv->spec.shape != spec.shape) {
      problems.push_back(label + ": " + DTypeName(spec.dtype) + ShapeString(spec.shape) + " in this model vs " +
                         DTypeName(mv->spec.dtype) + ShapeString(mv->spec.shape) + " in the snapshot");
      continue;
    }
    if (o.slots && spec.trainable) {
      ASSIGN_OR_RETURN(SlotNames slots, SlotsOf(spec, session_->options().optimizer));
      if (slots.names != mv->slots) {
        problems.push_back(label + ": optimizer slots " + Join(slots.names) + " (" + slots.optimizer +
                           ") in this model vs " + Join(mv->slots) + " (" +
                           (mv->optimizer.empty() ? "none" : mv->optimizer) + ") in the snapshot");
        continue;
      }
    }
    pairs->emplace_back(current, saved);
  }
  if (!o.partial) {
    for (const ManifestVariable& v : m.variables) {
      if (!used.count(v.spec.name) && !Bookkeeping(v.spec.name)) {
        problems.push_back("unexpected: '" + v.spec.name + "' is in the snapshot but not in this model");
      }
    }
  }
  if (problems.empty()) return Status::OK();
  std::string text = "snapshot " + std::to_string(m.step) + " in " + options_.model_dir +
                     " does not fit this model (" + std::to_string(problems.size()) + " problem" +
                     (problems.size() == 1 ? "" : "s") + "):";
  for (const std::string& p : problems) text += "\n  " + p;
  return FailedPrecondition(text);
}

Status Saver::ValidateSparse(const SnapshotManifest& m, const RestoreOptions& o, const std::vector<std::string>& wanted,
                             std::vector<std::pair<std::string, std::string>>* pairs,
                             std::vector<std::string>* problems) const {
  std::set<std::string> used;
  for (const SparseTableSpec& spec : sparse_specs_) {
    const std::string& current = spec.name;
    const bool listed = o.partial ? std::find(wanted.begin(), wanted.end(), current) != wanted.end()
                                  : std::binary_search(saved_sparse_.begin(), saved_sparse_.end(), current);
    if (!listed) continue;
    auto mapped = o.name_map.find(current);
    const std::string saved = mapped == o.name_map.end() ? current : mapped->second;
    const ManifestSparseTable* t = m.FindSparseTable(saved);
    const std::string label = "sparse table '" + current + "'" + (saved != current ? " (from '" + saved + "')" : "");
    if (!t) {
      problems->push_back("missing: sparse table '" + saved + "' is not in the snapshot" +
                          (saved != current ? " (wanted for '" + current + "')" : ""));
      continue;
    }
    used.insert(saved);
    if (t->spec.dim != spec.dim) {
      problems->push_back(label + ": dim " + std::to_string(spec.dim) + " in this model vs " +
                          std::to_string(t->spec.dim) + " in the snapshot");
      continue;
    }
    if (o.slots && spec.trainable) {
      ASSIGN_OR_RETURN(SlotTable slots, SlotTableOf(session_->options().optimizer));
      std::vector<std::string> names;
      for (const SlotDef& d : slots.slots) names.push_back(d.name);
      if (!names.empty() && names != t->slots) {
        problems->push_back(label + ": optimizer slots " + Join(names) + " (" + slots.name + ") in this model vs " +
                            Join(t->slots) + " (" + (t->optimizer.empty() ? "none" : t->optimizer) +
                            ") in the snapshot");
        continue;
      }
    }
    pairs->emplace_back(current, saved);
  }
  if (!o.partial) {
    for (const ManifestSparseTable& t : m.sparse_tables) {
      if (!used.count(t.spec.name)) {
        problems->push_back("unexpected: sparse table '" + t.spec.name + "' is in the snapshot but not in this model");
      }
    }
  }
  return Status::OK();
}

StatusOr<RestoreResult> Saver::Restore(const RestoreOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(CheckModelDir(options_.model_dir));
  int64_t step = o.step;
  if (step < 0) {
    ASSIGN_OR_RETURN(step, LatestCommittedStep(options_.model_dir));
  }
  ASSIGN_OR_RETURN(SnapshotManifest m, ReadManifest(options_.model_dir, step));
  std::vector<std::pair<std::string, std::string>> pairs;
  RETURN_IF_ERROR(Validate(m, o, &pairs));

  SnapshotRestoreRequest req;
  req.model_dir = options_.model_dir;
  req.step = step;
  req.slots = o.slots;
  req.num_servers = client_->num_servers();
  // Names this restore on every server, so workers can tell when all have it.
  std::random_device rd;
  while (req.restore_id == 0) req.restore_id = (uint64_t{rd()} << 32) ^ rd();
  bool restores_global_step = false;
  for (const auto& [current, saved] : pairs) {
    req.variables.push_back(current);
    req.saved_names.push_back(saved);
    restores_global_step |= current == kGlobalStep;
  }
  if (restores_global_step && session_->options().mode.sync()) req.sync_step = m.global_step;
  // Every server reads and verifies its part first; only if all succeed do
  // they replace their shards, so a failed restore changes nothing.
  StatusOr<SnapshotRestoreReply> staged = client_->SnapshotRestore(req);
  if (!staged.ok()) {
    SnapshotRestoreRequest discard;
    discard.phase = RestorePhase::kDiscard;
    discard.model_dir = req.model_dir;
    discard.step = step;
    (void)client_->SnapshotRestore(discard);
    return staged.status();
  }
  SnapshotRestoreRequest apply;
  apply.phase = RestorePhase::kApply;
  apply.model_dir = req.model_dir;
  apply.step = step;
  ASSIGN_OR_RETURN(SnapshotRestoreReply restored, client_->SnapshotRestore(apply));
  // (In ssp mode a worker's clock is its own steps, which the trainer resumes.)
  if (restores_global_step && !m.mode.ssp()) client_->ResumeAt(m.global_step);
  if (o.rebuild_collections) session_->SetCollections(m.collections);

  RestoreResult r;
  r.step = step;
  r.global_step = m.global_step;
  r.workers = m.workers;
  r.restored = req.variables;
  r.bytes = restored.bytes;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("restored snapshot {} from {}: {} variable(s), {:.1f} MiB in {:.2f} s (global step {})", step,
               options_.model_dir, r.restored.size(), r.bytes / 1048576.0, r.seconds, r.global_step);
  return r;
}

}  // namespace cairn
