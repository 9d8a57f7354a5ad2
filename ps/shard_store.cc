#include "ps/shard_store.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <set>
#include <utility>

namespace cairn {

Status ShardStore::CheckConflict(const Shard& s, const ShardDecl& decl) {
  const bool trainable = decl.spec.trainable;
  if (s.info.spec == decl.spec && s.info.row_begin == decl.row_begin && s.info.row_end == decl.row_end &&
      (!trainable || s.optimizer_spec == decl.optimizer)) {
    return Status::OK();
  }
  auto describe = [](const VariableSpec& spec, int64_t b, int64_t e, const OptimizerSpec& o) {
    return spec.DebugString() + " rows [" + std::to_string(b) + ", " + std::to_string(e) + ") optimizer " + o.kind +
           "(lr=" + std::to_string(o.learning_rate) + ")";
  };
  return AlreadyExists("variable '" + decl.spec.name + "' exists as " +
                       describe(s.info.spec, s.info.row_begin, s.info.row_end, s.optimizer_spec) +
                       "; cannot create it as " +
                       describe(decl.spec, decl.row_begin, decl.row_end, decl.optimizer));
}

Status ShardStore::Create(const ShardDecl& decl) {
  RETURN_IF_ERROR(ValidateSpec(decl.spec));
  const VariableSpec& spec = decl.spec;
  if (decl.row_begin < 0 || decl.row_begin > decl.row_end || decl.row_end > spec.rows()) {
    return InvalidArgument("variable '" + spec.name + "': rows [" + std::to_string(decl.row_begin) + ", " +
                           std::to_string(decl.row_end) + ") are outside its " + std::to_string(spec.rows()) +
                           " rows");
  }
  if (spec.trainable && spec.dtype != DType::kFloat32) {
    return InvalidArgument("variable '" + spec.name + "': only float32 variables can be trainable");
  }
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = shards_.find(spec.name);
    if (it != shards_.end()) return CheckConflict(*it->second, decl);
  }
  auto shard = std::make_unique<Shard>();
  shard->info = ShardInfo{spec, decl.row_begin, decl.row_end};
  shard->optimizer_spec = decl.optimizer;
  if (spec.trainable) {
    ASSIGN_OR_RETURN(shard->optimizer, Optimizer::Create(decl.optimizer));
    shard->slot_defs = shard->optimizer->Slots();
  }
  shard->values = Tensor::Uninitialized(spec.dtype, shard->info.shape());
  for (const SlotDef& def : shard->slot_defs) {
    shard->slots.push_back(Tensor::Uninitialized(DType::kFloat32, def.scalar ? Shape{1} : shard->info.shape()));
  }
  Initialize(*shard);
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (sparse_.count(spec.name)) {
    return AlreadyExists("'" + spec.name + "' is a sparse table here; it cannot also be a dense variable");
  }
  auto it = shards_.find(spec.name);
  if (it != shards_.end()) return CheckConflict(*it->second, decl);  // created meanwhile
  shards_.emplace(spec.name, std::move(shard));
  return Status::OK();
}

void ShardStore::Initialize(Shard& shard) {
  InitializeRows(shard.info.spec, shard.info.row_begin, &shard.values);
  for (size_t k = 0; k < shard.slots.size(); ++k) shard.slots[k].flat().setConstant(shard.slot_defs[k].initial);
  shard.initial = true;
}

StatusOr<ShardStore::Shard*> ShardStore::Find(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = shards_.find(name);
  if (it == shards_.end()) return NotFound("variable '" + name + "' does not exist on this server");
  return it->second.get();
}

bool ShardStore::Holds(const std::string& name) const { return Find(name).ok(); }

Status ShardStore::CheckNotRestoring(const Shard& shard) {
  if (!shard.restoring) return Status::OK();
  return FailedPrecondition("variable '" + shard.info.spec.name +
                            "' is being restored from a snapshot: it takes no reads or updates until the restore "
                            "is applied or discarded");
}

StatusOr<Tensor> ShardStore::Read(const std::string& name, ShardInfo* info) const {
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  if (info) *info = shard->info;
  std::lock_guard<std::mutex> lock(shard->mu);
  RETURN_IF_ERROR(CheckNotRestoring(*shard));
  return shard->values.Clone();
}

StatusOr<Tensor> ShardStore::ReadShared(const std::string& name, ShardInfo* info) const {
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  if (info) *info = shard->info;
  std::lock_guard<std::mutex> lock(shard->mu);
  RETURN_IF_ERROR(CheckNotRestoring(*shard));
  return Lend(*shard);
}

// A reader's view owns a lease rather than the buffer itself: the lease holds
// the buffer and counts one reader of it, however often the view is copied
// (a pull reply's frame, and the copy its checksum job hashes), until the
// last copy goes. The count goes up under shard.mu, where WritableValues
// reads it; it goes down on whatever thread drops the last copy, after that
// thread's last read of the bytes, as a release that WritableValues' acquire
// load pairs with.
Tensor ShardStore::Lend(Shard& shard) {
  std::shared_ptr<std::atomic<int64_t>> readers = shard.readers;
  readers->fetch_add(1, std::memory_order_relaxed);  // ordered by shard.mu
  std::shared_ptr<const void> lease(shard.values.raw(), [buffer = shard.values.owner(), readers](const void*) {
    readers->fetch_sub(1, std::memory_order_release);
  });
  return Tensor::View(shard.values.dtype(), shard.values.shape(), std::move(lease), shard.values.raw());
}

// Readers are only ever added under shard.mu (Lend), so a count of zero,
// read under it, stays zero while it is held. The acquire load reads the
// last reader's release (every decrement is a read-modify-write, so it is
// in each earlier reader's release sequence): all their reads of the bytes
// happen before our writes. This was once use_count() on the buffer's
// shared_ptr with an acquire fence: right by the C++ model, but invisible
// to ThreadSanitizer, which does not model fences and reported the pull
// checksum job's reads racing the next update.
Tensor& ShardStore::WritableValues(Shard& shard) {
  shard.initial = false;
  if (shard.readers->load(std::memory_order_acquire) > 0) {
    shard.values = shard.values.Clone();  // the readers keep the old buffer
    shard.readers = std::make_shared<std::atomic<int64_t>>(0);  // and its count
  }
  return shard.values;
}

Status ShardStore::CheckUpdate(const std::string& name, UpdateKind kind, int64_t row_begin,
                               const Tensor& value) const {
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  if (row_begin != shard->info.row_begin) {
    return InvalidArgument(std::string(UpdateKindName(kind)) + " for '" + name + "' starts at row " +
                           std::to_string(row_begin) + " but this server's shard is rows [" +
                           std::to_string(shard->info.row_begin) + ", " + std::to_string(shard->info.row_end) + ")");
  }
  {
    std::lock_guard<std::mutex> lock(shard->mu);
    RETURN_IF_ERROR(CheckNotRestoring(*shard));
  }
  return CheckUpdateOf(*shard, kind, value);
}

namespace {

// Whether `shape` is the shard's own (ShardInfo::shape() without building
// it: this runs for every tensor of every push).
bool IsShardShape(const ShardInfo& info, const Shape& shape) {
  const Shape& full = info.spec.shape;
  if (shape.size() != full.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != (i == 0 ? info.row_end - info.row_begin : full[i])) return false;
  }
  return true;
}

}  // namespace

Status ShardStore::CheckUpdateOf(const Shard& shard, UpdateKind kind, const Tensor& value) {
  const ShardInfo& info = shard.info;
  const std::string& name = info.spec.name;
  const char* what = UpdateKindName(kind);
  if (kind == UpdateKind::kGradient && !info.spec.trainable) {
    return FailedPrecondition("variable '" + name + "' is not trainable: it takes assigns, not gradients");
  }
  if (value.dtype() != info.spec.dtype) {
    return InvalidArgument(std::string(what) + " for '" + name + "' is " + DTypeName(value.dtype()) +
                           " but the variable is " + DTypeName(info.spec.dtype));
  }
  if (!IsShardShape(info, value.shape())) {
    return InvalidArgument(std::string(what) + " for '" + name + "' has shape " + ShapeString(value.shape()) +
                           " but the shard has shape " + ShapeString(info.shape()));
  }
  return Status::OK();
}

Status ShardStore::Apply(const std::string& name, UpdateKind kind, const Tensor& value, float lr) {
  // One lookup for both the check and the update: this runs for every
  // tensor of every push.
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  RETURN_IF_ERROR(CheckUpdateOf(*shard, kind, value));
  std::lock_guard<std::mutex> lock(shard->mu);
  RETURN_IF_ERROR(CheckNotRestoring(*shard));
  Tensor& v = WritableValues(*shard);
  switch (kind) {
    case UpdateKind::kGradient: {
      // On the stack: this runs for every tensor of every push.
      float* slots[Optimizer::kMaxSlots];
      assert(shard->slots.size() <= Optimizer::kMaxSlots);
      for (size_t k = 0; k < shard->slots.size(); ++k) slots[k] = shard->slots[k].data<float>();
      const float rate = lr >= 0 ? lr : static_cast<float>(shard->optimizer_spec.learning_rate);
      shard->optimizer->Apply(v.data<float>(), value.data<float>(), v.num_elements(), slots, rate);
      break;
    }
    case UpdateKind::kAssign:
      std::memcpy(v.raw(), value.raw(), v.byte_size());
      break;
    case UpdateKind::kAssignAdd:
      if (v.dtype() == DType::kInt64) {
        for (int64_t i = 0; i < v.num_elements(); ++i) v.data<int64_t>()[i] += value.data<int64_t>()[i];
      } else {
        v.flat() += value.flat();
      }
      break;
  }
  return Status::OK();
}

bool ShardStore::CountStep(const std::string& name) {
  StatusOr<Shard*> shard = Find(name);
  if (!shard.ok()) return false;
  std::lock_guard<std::mutex> lock((*shard)->mu);
  if ((*shard)->restoring) return false;
  if ((*shard)->values.dtype() != DType::kInt64 || (*shard)->values.num_elements() != 1) return false;
  Tensor& v = WritableValues(**shard);
  ++v.data<int64_t>()[0];
  return true;
}

namespace {

// Tensors handed back to Export, by dtype and shape.
class SpareTensors {
 public:
  explicit SpareTensors(std::vector<ShardCopy> copies) {
    for (ShardCopy& c : copies) {
      Keep(std::move(c.values));
      for (Tensor& s : c.slots) Keep(std::move(s));
    }
  }

  // A tensor of `dtype` and `shape` for Export to overwrite: a spare one if
  // there is one, else a new, uninitialized one.
  Tensor Take(DType dtype, const Shape& shape) {
    auto it = spare_.find({dtype, shape});
    if (it == spare_.end() || it->second.empty()) return Tensor::Uninitialized(dtype, shape);
    // First in, first out: with unchanged shards every buffer gets its old role back.
    Tensor t = std::move(it->second.front());
    it->second.pop_front();
    return t;
  }

  // The tensors nobody took, as copies holding one tensor each (which is
  // all a later SpareTensors looks at).
  std::vector<ShardCopy> Leftovers() {
    std::vector<ShardCopy> out;
    for (auto& [key, tensors] : spare_) {
      for (Tensor& t : tensors) {
        ShardCopy c;
        c.values = std::move(t);
        out.push_back(std::move(c));
      }
    }
    spare_.clear();
    return out;
  }

 private:
  void Keep(Tensor t) {
    // Sole owner: no other Tensor views these bytes, and none can start to,
    // since this one is ours. Anything shared is dropped, not overwritten.
    if (t.raw() == nullptr || t.owner().use_count() != 1) return;
    const Shape shape = t.shape();
    spare_[{t.dtype(), shape}].push_back(std::move(t));
  }

  std::map<std::pair<DType, Shape>, std::deque<Tensor>> spare_;
};

void CopyInto(const Tensor& from, Tensor* to) {
  if (from.byte_size() > 0) std::memcpy(to->raw(), from.raw(), from.byte_size());
}

}  // namespace

std::vector<ShardStore::Shard*> ShardStore::Choose(const std::vector<std::string>& names) const {
  std::vector<Shard*> chosen;
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (names.empty()) {
      for (const auto& [name, shard] : shards_) chosen.push_back(shard.get());
    } else {
      std::set<Shard*> seen;
      for (const std::string& name : names) {
        auto it = shards_.find(name);
        if (it != shards_.end() && seen.insert(it->second.get()).second) chosen.push_back(it->second.get());
      }
    }
  }
  std::sort(chosen.begin(), chosen.end(), [](Shard* a, Shard* b) { return a->info.spec.name < b->info.spec.name; });
  return chosen;
}

// Shapes, slot definitions and optimizers are constant after creation, so
// this needs no shard lock.
std::vector<ShardCopy> ShardStore::Allocate(const std::vector<Shard*>& shards, bool with_slots,
                                            std::vector<ShardCopy> reuse, std::vector<ShardCopy>* unused) {
  SpareTensors spare(std::move(reuse));
  std::vector<ShardCopy> copies;
  copies.reserve(shards.size());
  for (Shard* shard : shards) {
    ShardCopy c{shard->info, shard->optimizer_spec, shard->slot_defs, {}, {}};
    c.values = spare.Take(shard->info.spec.dtype, shard->info.shape());
    if (with_slots) {
      for (const SlotDef& def : shard->slot_defs) {
        c.slots.push_back(spare.Take(DType::kFloat32, def.scalar ? Shape{1} : shard->info.shape()));
      }
    }
    copies.push_back(std::move(c));
  }
  if (unused) *unused = spare.Leftovers();
  return copies;
}

std::vector<ShardCopy> ShardStore::AllocateCopies(const std::vector<std::string>& names, bool with_slots,
                                                  std::vector<ShardCopy> reuse, std::vector<ShardCopy>* unused) const {
  if (names.empty()) {  // Choose would take an empty list as "every shard"
    if (unused) *unused = std::move(reuse);
    return {};
  }
  return Allocate(Choose(names), with_slots, std::move(reuse), unused);
}

std::vector<ShardCopy> ShardStore::Export(const std::vector<std::string>& names, ExportOptions options,
                                          std::vector<SparseCut>* sparse) const {
  const std::vector<Shard*> chosen = Choose(names);
  const std::vector<SparseTable*> tables = sparse ? ChooseSparse(names) : std::vector<SparseTable*>{};
  // Destinations are chosen before the cut: the updates held off wait for
  // the copying alone.
  std::vector<ShardCopy> copies = Allocate(chosen, /*with_slots=*/true, std::move(options.reuse));
  if (sparse) sparse->assign(tables.size(), SparseCut{});
  {
    std::unique_lock<std::shared_mutex> cut(update_mu_);
    for (size_t i = 0; i < chosen.size(); ++i) {
      Shard* shard = chosen[i];
      ShardCopy& c = copies[i];
      std::lock_guard<std::mutex> lock(shard->mu);
      CopyInto(shard->values, &c.values);
      for (size_t k = 0; k < shard->slots.size(); ++k) CopyInto(shard->slots[k], &c.slots[k]);
    }
    for (size_t i = 0; i < tables.size(); ++i) (*sparse)[i] = SparseCut{tables[i], tables[i]->CopyRecords()};
  }
  return copies;
}

uint64_t SparseCut::bytes() const {
  uint64_t per_row = sizeof(int64_t) + static_cast<uint64_t>(table->spec().dim) * sizeof(float);
  for (size_t k = 0; k < table->slots().size(); ++k) per_row += table->SlotWidth(k) * sizeof(float);
  return per_row * static_cast<uint64_t>(records.rows);
}

SparseCopy SparseCut::Finish() const {
  return SparseCopy{table->spec(), table->optimizer_spec(), table->slots(), table->SortRecords(records)};
}

std::vector<SparseTable*> ShardStore::ChooseSparse(const std::vector<std::string>& names) const {
  std::vector<SparseTable*> out;
  std::shared_lock<std::shared_mutex> lock(mu_);
  if (names.empty()) {
    for (const auto& [name, table] : sparse_) out.push_back(table.get());
    return out;
  }
  std::vector<std::string> sorted(names);
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (const std::string& name : sorted) {
    auto it = sparse_.find(name);
    if (it != sparse_.end()) out.push_back(it->second.get());
  }
  return out;
}

Status ShardStore::ImportSparse(const std::vector<SparseCopy>& copies) {
  std::vector<SparseTable*> targets;
  for (const SparseCopy& c : copies) {
    ASSIGN_OR_RETURN(SparseTable * table, FindSparse(c.spec.name));
    const SparseRows& rows = c.rows;
    const size_t n = rows.ids.size();
    bool fits = rows.dim == table->spec().dim && rows.values.size() == n * rows.dim &&
                rows.slots.size() == table->slots().size();
    for (size_t k = 0; fits && k < rows.slots.size(); ++k) fits = rows.slots[k].size() == n * table->SlotWidth(k);
    if (!fits) {
      return InvalidArgument("restoring sparse table '" + c.spec.name + "': rows of dim " + std::to_string(rows.dim) +
                             " with " + std::to_string(rows.slots.size()) + " slot(s) do not fit " +
                             table->spec().DebugString() + " with " + std::to_string(table->slots().size()));
    }
    targets.push_back(table);
  }
  std::unique_lock<std::shared_mutex> cut(update_mu_);
  for (size_t i = 0; i < copies.size(); ++i) {
    // Checked above: Import fails only on ids a snapshot's checks already refused.
    RETURN_IF_ERROR(targets[i]->Import(copies[i].rows));
  }
  return Status::OK();
}

StatusOr<ShardCopy> ShardStore::Describe(const std::string& name) const {
  ASSIGN_OR_RETURN(Shard * shard, Find(name));
  return ShardCopy{shard->info, shard->optimizer_spec, shard->slot_defs, {}, {}};
}

Status ShardStore::Import(const std::vector<ShardCopy>& copies) {
  std::vector<Shard*> targets;
  for (const ShardCopy& c : copies) {
    const std::string& name = c.info.spec.name;
    ASSIGN_OR_RETURN(Shard * shard, Find(name));
    if (c.values.dtype() != shard->info.spec.dtype || c.values.shape() != shard->info.shape()) {
      return InvalidArgument("restoring '" + name + "': " + DTypeName(c.values.dtype()) +
                             ShapeString(c.values.shape()) + " does not fit the shard's " +
                             DTypeName(shard->info.spec.dtype) + ShapeString(shard->info.shape()));
    }
    if (!c.slots.empty()) {
      if (c.slots.size() != shard->slots.size()) {
        return InvalidArgument("restoring '" + name + "': " + std::to_string(c.slots.size()) +
                               " optimizer slots for a shard with " + std::to_string(shard->slots.size()));
      }
      for (size_t i = 0; i < c.slots.size(); ++i) {
        if (c.slots[i].dtype() != shard->slots[i].dtype() || c.slots[i].shape() != shard->slots[i].shape()) {
          return InvalidArgument("restoring '" + name + "': slot '" + shard->slot_defs[i].name + "' is " +
                                 ShapeString(c.slots[i].shape()) + ", the shard's is " +
                                 ShapeString(shard->slots[i].shape()));
        }
      }
    }
    targets.push_back(shard);
  }
  std::unique_lock<std::shared_mutex> cut(update_mu_);
  for (size_t i = 0; i < copies.size(); ++i) {
    Shard* shard = targets[i];
    std::lock_guard<std::mutex> lock(shard->mu);
    Tensor& values = WritableValues(*shard);
    std::memcpy(values.raw(), copies[i].values.raw(), values.byte_size());
    for (size_t k = 0; k < copies[i].slots.size(); ++k) {
      std::memcpy(shard->slots[k].raw(), copies[i].slots[k].raw(), shard->slots[k].byte_size());
    }
  }
  return Status::OK();
}

StatusOr<std::vector<std::string>> ShardStore::FillInitial(const std::vector<std::string>& names, bool with_slots,
                                                           const std::function<Status(ShardCopy&)>& fill) {
  if (names.empty()) return std::vector<std::string>{};  // Choose would take it as "every shard"
  const std::vector<Shard*> candidates = Choose(names);
  std::unique_lock<std::shared_mutex> cut(update_mu_);
  // Every filled shard stays locked until the whole restore is in (or
  // undone). Nothing else takes two shard locks, so this cannot deadlock.
  std::vector<std::unique_lock<std::mutex>> held;
  std::vector<Shard*> filled;
  for (Shard* shard : candidates) {
    std::unique_lock<std::mutex> lock(shard->mu);
    if (!shard->initial) continue;
    held.push_back(std::move(lock));
    filled.push_back(shard);
    ShardCopy target{shard->info, shard->optimizer_spec, shard->slot_defs, WritableValues(*shard), {}};
    if (with_slots) target.slots = shard->slots;  // shares their buffers: fill writes the shard's own
    Status s = fill(target);
    target = {};  // drops its references, so the buffers are the shard's alone again
    if (!s.ok()) {
      for (Shard* f : filled) {
        WritableValues(*f);
        Initialize(*f);
      }
      return s;
    }
  }
  for (Shard* shard : filled) shard->restoring = true;  // their locks are still held
  std::vector<std::string> out;
  for (Shard* shard : filled) out.push_back(shard->info.spec.name);
  return out;
}

void ShardStore::FinishRestore(const std::vector<std::string>& names, bool keep) {
  std::unique_lock<std::shared_mutex> cut(update_mu_);
  for (const std::string& name : names) {
    StatusOr<Shard*> shard = Find(name);
    if (!shard.ok()) continue;
    std::lock_guard<std::mutex> lock((*shard)->mu);
    if (!keep) {
      WritableValues(**shard);
      Initialize(**shard);
    }
    (*shard)->restoring = false;
  }
}

Status ShardStore::CheckCountable(const std::string& name) const {
  StatusOr<Shard*> shard = Find(name);
  if (!shard.ok()) return Status::OK();  // held elsewhere
  std::lock_guard<std::mutex> lock((*shard)->mu);
  return CheckNotRestoring(**shard);
}

size_t ShardStore::size() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return shards_.size();
}

std::vector<std::string> ShardStore::Names() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::string> names;
  names.reserve(shards_.size());
  for (const auto& [name, shard] : shards_) names.push_back(name);
  return names;
}

Status ShardStore::CreateSparse(const SparseTableDecl& decl) {
  auto conflict = [&](const SparseTable& t) -> Status {
    if (t.spec() == decl.spec && t.optimizer_spec() == decl.optimizer) return Status::OK();
    return AlreadyExists("sparse table '" + decl.spec.name + "' exists as " + t.spec().DebugString() + " with " +
                         t.optimizer_spec().kind + "; asked for " + decl.spec.DebugString() + " with " +
                         decl.optimizer.kind);
  };
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (shards_.count(decl.spec.name)) {
      return AlreadyExists("'" + decl.spec.name + "' is a dense variable here; it cannot also be a sparse table");
    }
    auto it = sparse_.find(decl.spec.name);
    if (it != sparse_.end()) return conflict(*it->second);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SparseTable> table, SparseTable::Create(decl.spec, decl.optimizer));
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (shards_.count(decl.spec.name)) {
    return AlreadyExists("'" + decl.spec.name + "' is a dense variable here; it cannot also be a sparse table");
  }
  auto it = sparse_.find(decl.spec.name);
  if (it != sparse_.end()) return conflict(*it->second);  // created meanwhile
  sparse_.emplace(decl.spec.name, std::move(table));
  return Status::OK();
}

StatusOr<SparseTable*> ShardStore::FindSparse(const std::string& name) const {
  ASSIGN_OR_RETURN(std::shared_ptr<SparseTable> table, ShareSparse(name));
  return table.get();
}

StatusOr<std::shared_ptr<SparseTable>> ShardStore::ShareSparse(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = sparse_.find(name);
  if (it == sparse_.end()) return NotFound("sparse table '" + name + "' is not on this server");
  return it->second;
}

std::vector<std::string> ShardStore::SparseNames() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, table] : sparse_) names.push_back(name);
  return names;
}

}  // namespace cairn
