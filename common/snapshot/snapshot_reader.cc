#include "common/snapshot/snapshot_reader.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "common/snapshot/model_dir.h"
#include "common/sparse_spec.h"

namespace cairn {
namespace {

std::string RowsString(int64_t begin, int64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// Bytes per row of part `part` (values: the variable's dtype; slots: float32).
uint64_t RowBytes(const VariableSpec& spec, int part) {
  if (part == 0) return spec.row_bytes();
  return static_cast<uint64_t>(spec.rows() == 0 ? 0 : spec.num_elements() / spec.rows()) * sizeof(float);
}

// Checks that the database's record of a shard is the one the manifest describes.
Status CheckRecord(const ShardRecord* r, const ManifestVariable& v, const ManifestShard& s) {
  const VariableSpec& spec = v.spec;
  const std::string where = "server " + std::to_string(s.server) + "'s database";
  if (!r) {
    return DataLoss(where + " has no shard '" + spec.name + "' (the manifest puts rows " +
                    RowsString(s.row_begin, s.row_end) + " there)");
  }
  const VariableSpec& saved = r->info.spec;
  if (saved.shape != spec.shape || saved.dtype != spec.dtype) {
    return DataLoss(where + " holds '" + spec.name + "' as " + DTypeName(saved.dtype) + ShapeString(saved.shape) +
                    ", the manifest says " + DTypeName(spec.dtype) + ShapeString(spec.shape));
  }
  if (s.row_begin < r->info.row_begin || s.row_end > r->info.row_end) {
    return DataLoss(where + " holds rows " + RowsString(r->info.row_begin, r->info.row_end) + " of '" + spec.name +
                    "', the manifest puts rows " + RowsString(s.row_begin, s.row_end) + " there");
  }
  bool same_slots = r->slot_defs.size() == v.slots.size();
  for (size_t k = 0; same_slots && k < v.slots.size(); ++k) {
    same_slots = r->slot_defs[k].name == v.slots[k] && r->slot_defs[k].scalar == v.scalar_slots[k];
  }
  if (!same_slots) {
    return DataLoss(where + " holds '" + spec.name + "' with " + std::to_string(r->slot_defs.size()) +
                    " slot(s) other than the manifest's " + std::to_string(v.slots.size()));
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<SnapshotReader>> SnapshotReader::Open(const std::string& model_dir, int64_t step) {
  RETURN_IF_ERROR(CheckModelDir(model_dir));
  if (step < -1) return InvalidArgument("no snapshot step " + std::to_string(step) + ": steps are >= 0 (-1: the newest)");
  if (step == -1) {
    ASSIGN_OR_RETURN(step, LatestCommittedStep(model_dir));
  }
  StatusOr<SnapshotManifest> manifest = ReadManifest(model_dir, step);
  if (!manifest.ok()) {
    std::error_code ec;
    if (manifest.status().code() == StatusCode::kNotFound && std::filesystem::exists(SnapshotDirPath(model_dir, step), ec)) {
      return FailedPrecondition("not committed: '" + SnapshotDirPath(model_dir, step) +
                                "' is there but has no manifest (a save that never finished, or one in progress)");
    }
    return manifest.status();
  }
  std::unique_ptr<SnapshotReader> reader(new SnapshotReader(model_dir, std::move(*manifest)));
  RETURN_IF_ERROR(reader->CheckManifest());
  return reader;
}

Status SnapshotReader::CheckManifest() const {
  const SnapshotManifest& m = manifest_;
  for (const ManifestShard& s : m.shards) {
    if (!m.FindVariable(s.variable)) {
      return DataLoss("the manifest lists a shard of '" + s.variable + "', which it does not declare");
    }
    if (s.server < 0 || s.server >= m.num_servers) {
      return DataLoss("the manifest names server " + std::to_string(s.server) + " of a snapshot of " +
                      std::to_string(m.num_servers) + " servers");
    }
  }
  for (const ManifestSparseTable& t : m.sparse_tables) {
    if (t.scalar_slots.size() != t.slots.size() || t.rows_per_server.size() != static_cast<size_t>(m.num_servers)) {
      return DataLoss("the manifest's sparse table '" + t.spec.name + "' lists " + std::to_string(t.slots.size()) +
                      " slots, " + std::to_string(t.scalar_slots.size()) + " scalar flags and rows of " +
                      std::to_string(t.rows_per_server.size()) + " servers (of " + std::to_string(m.num_servers) + ")");
    }
  }
  for (const ManifestVariable& v : m.variables) {
    if (v.scalar_slots.size() != v.slots.size()) {
      return DataLoss("the manifest lists " + std::to_string(v.slots.size()) + " slots of '" + v.spec.name +
                      "' but " + std::to_string(v.scalar_slots.size()) + " scalar flags");
    }
  }
  return Status::OK();
}

StatusOr<const std::vector<const ManifestShard*>*> SnapshotReader::ShardsOf(const ManifestVariable& v) {
  const std::string& name = v.spec.name;
  auto cached = shards_of_.find(name);
  if (cached != shards_of_.end()) return &cached->second;
  std::vector<const ManifestShard*> shards;
  for (const ManifestShard& s : manifest_.shards) {
    if (s.variable == name) shards.push_back(&s);
  }
  std::sort(shards.begin(), shards.end(),
            [](const ManifestShard* a, const ManifestShard* b) { return a->row_begin < b->row_begin; });
  int64_t next = 0;
  for (const ManifestShard* s : shards) {
    if (s->row_end < s->row_begin) {
      return DataLoss("the manifest gives '" + name + "' a shard of rows " + RowsString(s->row_begin, s->row_end));
    }
    if (s->row_begin < next) {
      return DataLoss("rows " + RowsString(s->row_begin, std::min(next, s->row_end)) + " of '" + name +
                      "' are in more than one shard of the manifest");
    }
    if (s->row_begin > next) {
      return DataLoss("rows " + RowsString(next, s->row_begin) + " of '" + name + "' are in no shard of the manifest");
    }
    next = s->row_end;
  }
  if (next != v.spec.rows()) {
    return DataLoss(next < v.spec.rows()
                        ? "rows " + RowsString(next, v.spec.rows()) + " of '" + name + "' are in no shard of the manifest"
                        : "the manifest's shards of '" + name + "' run to row " + std::to_string(next) + " of " +
                              std::to_string(v.spec.rows()));
  }
  const bool scalar_slot = std::find(v.scalar_slots.begin(), v.scalar_slots.end(), true) != v.scalar_slots.end();
  if (shards.empty() && scalar_slot) return DataLoss("the manifest lists no shard of '" + name + "'");
  return &shards_of_.emplace(name, std::move(shards)).first->second;
}

StatusOr<SnapshotDb*> SnapshotReader::Db(int server) {
  auto it = dbs_.find(server);
  if (it != dbs_.end()) return it->second.get();
  const std::string path = ServerDbPath(model_dir_, manifest_.step, server);
  ASSIGN_OR_RETURN(std::unique_ptr<SnapshotDb> db, OpenSnapshotDb(path));
  if (db->step() != manifest_.step) {
    return DataLoss("'" + path + "' holds step " + std::to_string(db->step()) + ", not " +
                    std::to_string(manifest_.step));
  }
  return dbs_.emplace(server, std::move(db)).first->second.get();
}

StatusOr<const ManifestVariable*> SnapshotReader::Variable(const std::string& name, int part) const {
  const ManifestVariable* v = manifest_.FindVariable(name);
  if (!v) return NotFound("snapshot " + std::to_string(manifest_.step) + " has no variable '" + name + "'");
  if (part < 0 || static_cast<size_t>(part) > v->slots.size()) {
    return OutOfRange("'" + name + "' has no part " + std::to_string(part) + " (it has " +
                      std::to_string(1 + v->slots.size()) + ")");
  }
  return v;
}

Status SnapshotReader::ReadRows(const std::string& variable, int part, int64_t row_begin, int64_t row_end, void* out,
                                uint64_t out_bytes) {
  ASSIGN_OR_RETURN(const ManifestVariable* v, Variable(variable, part));
  ASSIGN_OR_RETURN(const std::vector<const ManifestShard*>* shards, ShardsOf(*v));
  const bool scalar_slot = part > 0 && v->scalar_slots[part - 1];
  if (scalar_slot) {
    if (row_begin != 0 || row_end != 0) {
      return InvalidArgument("'" + variable + "' part " + std::to_string(part) + " is a scalar slot: read it whole");
    }
    const ManifestShard& first = *shards->front();
    ASSIGN_OR_RETURN(SnapshotDb * db, Db(first.server));
    RETURN_IF_ERROR(CheckRecord(db->Find(variable), *v, first));
    return db->ReadRows(variable, part, 0, 0, out, out_bytes);
  }
  if (row_begin < 0 || row_begin > row_end || row_end > v->spec.rows()) {
    return OutOfRange("rows " + RowsString(row_begin, row_end) + " are not inside '" + variable + "' (" +
                      std::to_string(v->spec.rows()) + " rows)");
  }
  const uint64_t row_bytes = RowBytes(v->spec, part);
  if (out_bytes != static_cast<uint64_t>(row_end - row_begin) * row_bytes) {
    return InvalidArgument("reading rows " + RowsString(row_begin, row_end) + " of '" + variable + "' part " +
                           std::to_string(part) + " needs " + std::to_string((row_end - row_begin) * row_bytes) +
                           " bytes, the buffer has " + std::to_string(out_bytes));
  }
  for (const ManifestShard* s : *shards) {
    const int64_t lo = std::max(row_begin, s->row_begin), hi = std::min(row_end, s->row_end);
    if (lo >= hi) continue;
    ASSIGN_OR_RETURN(SnapshotDb * db, Db(s->server));
    RETURN_IF_ERROR(CheckRecord(db->Find(variable), *v, *s));
    RETURN_IF_ERROR(db->ReadRows(variable, part, lo, hi, static_cast<char*>(out) + (lo - row_begin) * row_bytes,
                                 static_cast<uint64_t>(hi - lo) * row_bytes));
  }
  return Status::OK();
}

StatusOr<Tensor> SnapshotReader::ReadPart(const std::string& variable, int part) {
  ASSIGN_OR_RETURN(const ManifestVariable* v, Variable(variable, part));
  const bool scalar_slot = part > 0 && v->scalar_slots[part - 1];
  const DType dtype = part == 0 ? v->spec.dtype : DType::kFloat32;
  Tensor t = Tensor::Uninitialized(dtype, scalar_slot ? Shape{1} : v->spec.shape);
  const int64_t rows = scalar_slot ? 0 : v->spec.rows();
  RETURN_IF_ERROR(ReadRows(variable, part, 0, rows, t.raw(), t.byte_size()));
  return t;
}

namespace {

// Checks that a database's record of a sparse table is the one the manifest describes.
Status CheckSparseRecord(const SparseRecord* r, const ManifestSparseTable& t, int server) {
  const std::string where = "server " + std::to_string(server) + "'s database";
  const std::string name = "sparse table '" + t.spec.name + "'";
  if (!r) {
    return DataLoss(where + " has no " + name + " (the manifest puts " + std::to_string(t.rows_per_server[server]) +
                    " rows there)");
  }
  if (r->spec.dim != t.spec.dim) {
    return DataLoss(where + " holds " + name + " of dim " + std::to_string(r->spec.dim) + ", the manifest says " +
                    std::to_string(t.spec.dim));
  }
  if (r->rows != t.rows_per_server[server]) {
    return DataLoss(where + " holds " + std::to_string(r->rows) + " rows of " + name + ", the manifest says " +
                    std::to_string(t.rows_per_server[server]));
  }
  bool same_slots = r->slot_defs.size() == t.slots.size();
  for (size_t k = 0; same_slots && k < t.slots.size(); ++k) {
    same_slots = r->slot_defs[k].name == t.slots[k] && r->slot_defs[k].scalar == t.scalar_slots[k];
  }
  if (!same_slots) {
    return DataLoss(where + " holds " + name + " with " + std::to_string(r->slot_defs.size()) +
                    " slot(s) other than the manifest's " + std::to_string(t.slots.size()));
  }
  return Status::OK();
}

// Appends the rows of `from` that `routing` picks to `to` (moved whole
// when `to` is empty and every row is picked).
void AppendRows(SparseRows&& from, const SparseRouting& routing, SparseRows* to) {
  auto keep = [&](int64_t id) { return routing.servers == 0 || ServerOfId(id, routing.servers) == routing.server; };
  if (to->ids.empty() && std::all_of(from.ids.begin(), from.ids.end(), keep)) {
    *to = std::move(from);
    return;
  }
  const size_t dim = static_cast<size_t>(from.dim);
  std::vector<size_t> widths;
  for (const std::vector<float>& slot : from.slots) widths.push_back(from.ids.empty() ? 0 : slot.size() / from.ids.size());
  for (size_t i = 0; i < from.ids.size(); ++i) {
    if (!keep(from.ids[i])) continue;
    to->ids.push_back(from.ids[i]);
    to->values.insert(to->values.end(), from.values.begin() + i * dim, from.values.begin() + (i + 1) * dim);
    for (size_t k = 0; k < widths.size(); ++k) {
      const auto begin = from.slots[k].begin() + i * widths[k];
      to->slots[k].insert(to->slots[k].end(), begin, begin + widths[k]);
    }
  }
}

// `rows` sorted by id (each database's rows are sorted; several databases' are not).
SparseRows SortedById(const SparseRows& rows) {
  std::vector<size_t> order(rows.ids.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows.ids[a] < rows.ids[b]; });
  SparseRows out;
  out.dim = rows.dim;
  out.slots.resize(rows.slots.size());
  const size_t dim = static_cast<size_t>(rows.dim);
  for (size_t i : order) {
    out.ids.push_back(rows.ids[i]);
    out.values.insert(out.values.end(), rows.values.begin() + i * dim, rows.values.begin() + (i + 1) * dim);
    for (size_t k = 0; k < rows.slots.size(); ++k) {
      const size_t w = rows.slots[k].size() / rows.ids.size();
      out.slots[k].insert(out.slots[k].end(), rows.slots[k].begin() + i * w, rows.slots[k].begin() + (i + 1) * w);
    }
  }
  return out;
}

}  // namespace

StatusOr<SparseCopy> SnapshotReader::ReadSparse(const std::string& table, SparseRouting routing) {
  const ManifestSparseTable* t = manifest_.FindSparseTable(table);
  if (!t) return NotFound("snapshot " + std::to_string(manifest_.step) + " has no sparse table '" + table + "'");
  SparseCopy out;
  out.spec = t->spec;
  out.optimizer = manifest_.optimizer;
  for (size_t k = 0; k < t->slots.size(); ++k) out.slot_defs.push_back(SlotDef{t->slots[k], t->scalar_slots[k], 0});
  out.rows.dim = t->spec.dim;
  out.rows.slots.resize(t->slots.size());
  size_t databases = 0;
  // With the snapshot's server count, server k's rows are all in database k.
  const bool own_only = routing.servers == manifest_.num_servers;
  for (int server = 0; server < manifest_.num_servers; ++server) {
    if (t->rows_per_server[server] == 0 || (own_only && server != routing.server)) continue;
    ASSIGN_OR_RETURN(SnapshotDb * db, Db(server));
    const SparseRecord* r = db->FindSparse(table);
    RETURN_IF_ERROR(CheckSparseRecord(r, *t, server));
    out.slot_defs = r->slot_defs;  // with their initial values
    out.optimizer = r->optimizer;
    ASSIGN_OR_RETURN(SparseCopy part, db->ReadSparse(table));
    AppendRows(std::move(part.rows), routing, &out.rows);
    ++databases;
  }
  if (databases > 1) out.rows = SortedById(out.rows);
  if (std::adjacent_find(out.rows.ids.begin(), out.rows.ids.end()) != out.rows.ids.end()) {
    return DataLoss("snapshot " + std::to_string(manifest_.step) + ": more than one server's database holds a row of " +
                    "sparse table '" + table + "'");
  }
  return out;
}

}  // namespace cairn
