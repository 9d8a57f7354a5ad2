#include "launch/snapshot_tools.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <system_error>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "launch/npz.h"
#include "common/snapshot/snapshot_reader.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr double kMiB = 1048576.0;

// ---- Reading a snapshot ----

std::string SlotName(const ManifestVariable& v, const std::string& slot) {
  return v.spec.name + "/" + v.optimizer + "/" + slot;
}

// Reads variable `v` and its slots through `reader`; appends them to `out`,
// the variable first, then its slots by name.
Status ReadVariable(SnapshotReader& reader, const ManifestVariable& v, std::vector<SnapshotTensor>* out) {
  const VariableSpec& spec = v.spec;
  ASSIGN_OR_RETURN(Tensor value, reader.ReadPart(spec.name, 0));
  out->push_back({spec.name, "", spec.trainable, std::move(value), ""});
  const size_t first_slot = out->size();
  for (size_t k = 0; k < v.slots.size(); ++k) {
    ASSIGN_OR_RETURN(Tensor slot, reader.ReadPart(spec.name, static_cast<int>(1 + k)));
    out->push_back({SlotName(v, v.slots[k]), spec.name, false, std::move(slot), ""});
  }
  std::sort(out->begin() + first_slot, out->end(),
            [](const SnapshotTensor& a, const SnapshotTensor& b) { return a.name < b.name; });
  return Status::OK();
}

std::string SlotName(const ManifestSparseTable& t, const std::string& slot) {
  return t.spec.name + "/" + t.optimizer + "/" + slot;
}

template <class T>
Tensor TensorOf(DType dtype, Shape shape, const std::vector<T>& values) {
  Tensor t = Tensor::Uninitialized(dtype, std::move(shape));
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(T));
  return t;
}

// Reads every row of sparse table `t` through `reader`: "<table>/ids"
// (int64 [n], sorted), "<table>/values" [n, dim] and each slot
// "<table>/<Optimizer>/<slot>" [n, width], slots by name.
Status ReadSparseTable(SnapshotReader& reader, const ManifestSparseTable& t, std::vector<SnapshotTensor>* out) {
  ASSIGN_OR_RETURN(SparseCopy copy, reader.ReadSparse(t.spec.name));
  const SparseRows& rows = copy.rows;
  const int64_t n = static_cast<int64_t>(rows.ids.size());
  const std::string& name = t.spec.name;
  out->push_back({name + "/ids", "", false, TensorOf(DType::kInt64, {n}, rows.ids), name});
  out->push_back({name + "/values", "", t.spec.trainable, TensorOf(DType::kFloat32, {n, t.spec.dim}, rows.values), name});
  const size_t first_slot = out->size();
  for (size_t k = 0; k < t.slots.size() && k < rows.slots.size(); ++k) {
    const int64_t width = n == 0 ? SparseSlotWidth(copy.slot_defs[k], t.spec.dim) : rows.slots[k].size() / n;
    out->push_back({SlotName(t, t.slots[k]), name + "/values", false, TensorOf(DType::kFloat32, {n, width}, rows.slots[k]),
                    name});
  }
  std::sort(out->begin() + first_slot, out->end(),
            [](const SnapshotTensor& a, const SnapshotTensor& b) { return a.name < b.name; });
  return Status::OK();
}

Status UnknownVariable(const SnapshotManifest& m, const std::string& only) {
  std::string hint;
  for (const ManifestVariable& v : m.variables) {
    for (const std::string& slot : v.slots) {
      if (SlotName(v, slot) == only) hint = " ('" + only + "' is a slot of '" + v.spec.name + "': ask for that)";
    }
  }
  if (hint.empty()) {
    hint = " (it has " + std::to_string(m.variables.size()) + ":";
    for (size_t i = 0; i < m.variables.size() && i < 10; ++i) hint += " " + m.variables[i].spec.name;
    hint += m.variables.size() > 10 ? " ...)" : ")";
  }
  return NotFound("no variable '" + only + "'" + hint);
}

// Reads committed snapshot `step` of `model_dir` one variable at a time
// (every variable, or just `only`), handing `visit` each variable with its
// slots, so at most one variable is in memory. `manifest` is set before the
// first visit.
using VariableVisitor = std::function<Status(std::vector<SnapshotTensor> variable_and_slots)>;
Status VisitSnapshot(const std::string& model_dir, int64_t step, const std::string& only, SnapshotManifest* manifest,
                     const VariableVisitor& visit) {
  if (step < -1) return InvalidArgument("no snapshot step " + std::to_string(step) + ": steps are >= 0 (-1: the newest)");
  RETURN_IF_ERROR(CheckModelDir(model_dir));
  if (step == -1) {
    ASSIGN_OR_RETURN(step, LatestCommittedStep(model_dir));
  }
  auto visit_all = [&]() -> Status {
    ASSIGN_OR_RETURN(std::unique_ptr<SnapshotReader> reader, SnapshotReader::Open(model_dir, step));
    *manifest = reader->manifest();
    const SnapshotManifest& m = *manifest;
    if (!only.empty() && !m.FindVariable(only) && !m.FindSparseTable(only)) return UnknownVariable(m, only);
    for (const ManifestVariable& v : m.variables) {  // sorted by name
      if (!only.empty() && v.spec.name != only) continue;
      std::vector<SnapshotTensor> tensors;
      RETURN_IF_ERROR(ReadVariable(*reader, v, &tensors));
      RETURN_IF_ERROR(visit(std::move(tensors)));
    }
    for (const ManifestSparseTable& t : m.sparse_tables) {  // after the variables, one table at a time
      if (!only.empty() && t.spec.name != only) continue;
      std::vector<SnapshotTensor> tensors;
      RETURN_IF_ERROR(ReadSparseTable(*reader, t, &tensors));
      RETURN_IF_ERROR(visit(std::move(tensors)));
    }
    return Status::OK();
  };
  return visit_all().WithContext("snapshot " + std::to_string(step));
}

// ---- Formatting ----

// "244 B", "61.4 KiB", "12.3 MiB", "1.25 GiB".
std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = bytes / 1024.0;
  int unit = 0;
  for (; value >= 1024 && unit < 3; ++unit) value /= 1024;
  return fmt::format("{:.{}f} {}", value, value < 10 ? 2 : 1, units[unit]);
}

std::string LocalTime(double unix_seconds) {
  const time_t t = static_cast<time_t>(unix_seconds);
  tm local{};
  if (!::localtime_r(&t, &local)) return "?";
  char text[32];
  return std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local) ? text : "?";
}

// Statistics over a tensor's elements; NaNs are counted, not averaged.
struct TensorStats {
  int64_t elements = 0;
  int64_t nan_count = 0;
  bool integer = false;
  int64_t int_min = 0, int_max = 0;  // integer tensors
  double min = 0, max = 0, mean = 0;
  bool has_values() const { return elements > nan_count; }
};

TensorStats StatsOf(const Tensor& t) {
  TensorStats s;
  s.elements = t.num_elements();
  if (s.elements == 0) return s;
  if (t.dtype() == DType::kInt64) {
    s.integer = true;
    const int64_t* p = t.data<int64_t>();
    s.int_min = s.int_max = p[0];
    long double sum = 0;
    for (int64_t i = 0; i < s.elements; ++i) {
      s.int_min = std::min(s.int_min, p[i]);
      s.int_max = std::max(s.int_max, p[i]);
      sum += p[i];
    }
    s.min = static_cast<double>(s.int_min);
    s.max = static_cast<double>(s.int_max);
    s.mean = static_cast<double>(sum / s.elements);
    return s;
  }
  const float* p = t.data<float>();
  double sum = 0;
  s.min = std::numeric_limits<double>::infinity();
  s.max = -s.min;
  for (int64_t i = 0; i < s.elements; ++i) {
    if (std::isnan(p[i])) {
      ++s.nan_count;
      continue;
    }
    s.min = std::min<double>(s.min, p[i]);
    s.max = std::max<double>(s.max, p[i]);
    sum += p[i];
  }
  if (s.has_values()) s.mean = sum / static_cast<double>(s.elements - s.nan_count);
  return s;
}

// What inspect shows of one tensor: what it is and its statistics, not its
// values (so inspect holds one variable's values at a time).
struct TensorSummary {
  std::string name;
  std::string slot_of;
  bool trainable = false;
  DType dtype = DType::kFloat32;
  Shape shape;
  TensorStats stats;
};

TensorSummary Summarize(const SnapshotTensor& t) {
  return {t.name, t.slot_of, t.trainable, t.value.dtype(), t.value.shape(), StatsOf(t.value)};
}

std::string StatText(const TensorStats& s, double v, int64_t integer) {
  if (!s.has_values()) return "-";
  return s.integer ? std::to_string(integer) : fmt::format("{:.6g}", v);
}

// JSON has no NaN or infinity: null stands for them, and for "no values".
Json JsonNumber(const TensorStats& s, double v) {
  if (!s.has_values() || !std::isfinite(v)) return nullptr;
  return v;
}

Json TensorJson(const TensorSummary& t) {
  const TensorStats& s = t.stats;
  Json j = {{"name", t.name},
            {"dtype", DTypeName(t.dtype)},
            {"shape", t.shape},
            {"trainable", t.trainable},
            {"slot_of", t.slot_of.empty() ? Json(nullptr) : Json(t.slot_of)},
            {"elements", s.elements},
            {"nan_count", s.nan_count}};
  j["min"] = s.integer && s.has_values() ? Json(s.int_min) : JsonNumber(s, s.min);
  j["max"] = s.integer && s.has_values() ? Json(s.int_max) : JsonNumber(s, s.max);
  j["mean"] = JsonNumber(s, s.mean);
  return j;
}

Json ManifestJson(const std::string& model_dir, const SnapshotManifest& m) {
  const OptimizerSpec& o = m.optimizer;
  Json workers = Json::array();
  for (const WorkerState& w : m.workers) {
    workers.push_back({{"worker", w.worker}, {"steps", w.steps}, {"epoch", w.epoch},
                       {"step_in_epoch", w.step_in_epoch}, {"seed", w.seed}});
  }
  return {{"model_dir", model_dir},
          {"step", m.step},
          {"global_step", m.global_step},
          {"num_servers", m.num_servers},
          {"created", m.created},
          {"created_local", LocalTime(m.created)},
          {"mode", {{"consistency", ConsistencyName(m.mode.consistency)}, {"num_workers", m.mode.num_workers}}},
          {"optimizer", {{"kind", o.kind}, {"learning_rate", o.learning_rate}, {"momentum", o.momentum},
                         {"nesterov", o.nesterov}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"epsilon", o.epsilon},
                         {"initial_accumulator", o.initial_accumulator}, {"l1", o.l1}, {"l2", o.l2},
                         {"lr_power", o.lr_power}}},
          {"bytes", m.bytes},
          {"collections", m.collections},
          {"workers", workers}};
}

void PrintTensorTable(const std::vector<TensorSummary>& tensors) {
  size_t name_w = 4, shape_w = 5, slot_w = 7;
  for (const TensorSummary& t : tensors) {
    name_w = std::max(name_w, t.name.size());
    shape_w = std::max(shape_w, ShapeString(t.shape).size());
    slot_w = std::max(slot_w, t.slot_of.size());
  }
  fmt::print("{:<{}}  {:<7}  {:<{}}  {:<9}  {:<{}}  {:>12}  {:>12}  {:>12}\n", "name", name_w, "dtype", "shape",
             shape_w, "trainable", "slot of", slot_w, "min", "max", "mean");
  for (const TensorSummary& t : tensors) {
    const TensorStats& s = t.stats;
    std::string mean = s.has_values() ? fmt::format("{:.6g}", s.mean) : "-";
    fmt::print("{:<{}}  {:<7}  {:<{}}  {:<9}  {:<{}}  {:>12}  {:>12}  {:>12}{}\n", t.name, name_w, DTypeName(t.dtype),
               ShapeString(t.shape), shape_w, t.trainable ? "yes" : "no", t.slot_of.empty() ? "-" : t.slot_of, slot_w,
               StatText(s, s.min, s.int_min), StatText(s, s.max, s.int_max), mean,
               s.nan_count ? fmt::format("  ({} NaN of {})", s.nan_count, s.elements) : "");
  }
}

// What inspect shows of one sparse table besides its tensors.
struct SparseSummary {
  std::string name;
  int32_t dim = 0;
  int64_t rows = 0;
  uint64_t bytes = 0;  // ids, values and slots
  std::vector<int64_t> rows_per_server;
  TensorStats values;
};

Json SparseJson(const SparseSummary& t) {
  const TensorStats& s = t.values;
  return {{"name", t.name},         {"dim", t.dim},
          {"rows", t.rows},         {"bytes", t.bytes},
          {"rows_per_server", t.rows_per_server},
          {"min", JsonNumber(s, s.min)}, {"max", JsonNumber(s, s.max)}, {"mean", JsonNumber(s, s.mean)},
          {"nan_count", s.nan_count}};
}

void PrintSparseTables(const std::vector<SparseSummary>& tables) {
  if (tables.empty()) return;
  size_t name_w = 4;
  for (const SparseSummary& t : tables) name_w = std::max(name_w, t.name.size());
  fmt::print("\nsparse tables:\n");
  fmt::print("  {:<{}}  {:>5}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}  {}\n", "name", name_w, "dim", "rows", "bytes",
             "min", "max", "mean", "rows per server");
  for (const SparseSummary& t : tables) {
    const TensorStats& s = t.values;
    fmt::print("  {:<{}}  {:>5}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}  {}\n", t.name, name_w, t.dim, t.rows,
               FormatBytes(t.bytes), StatText(s, s.min, 0), StatText(s, s.max, 0),
               s.has_values() ? fmt::format("{:.6g}", s.mean) : "-", fmt::join(t.rows_per_server, " "));
  }
}

void PrintManifestTail(const SnapshotManifest& m) {
  fmt::print("\ncollections:\n");
  if (m.collections.empty()) fmt::print("  (none)\n");
  for (const auto& [name, vars] : m.collections) fmt::print("  {}: {}\n", name, fmt::join(vars, ", "));
  fmt::print("\nworkers:\n");
  if (m.workers.empty()) fmt::print("  (none)\n");
  for (const WorkerState& w : m.workers) {
    fmt::print("  worker {}: steps {}, epoch {}, step_in_epoch {}, seed {}\n", w.worker, w.steps, w.epoch,
               w.step_in_epoch, w.seed);
  }
}

// ---- Commands ----

int Fail(const std::string& command, const Status& s) {
  spdlog::error("cairn {}: {}", command, s.ToString());
  return 1;
}

void AddDirOption(CLI::App* c) {
  c->add_option("dir", "Model directory (the job's snapshot.model_dir)")->required();
}

void AddStepOption(CLI::App* c) {
  c->add_option("--step", "Snapshot step (default: the newest committed one)")->default_val(-1);
}

std::string DirOf(const CLI::App& c) { return c.get_option("dir")->as<std::string>(); }
bool JsonFlag(const CLI::App& c) { return c.get_option("--json")->count() > 0; }

Json ListingJson(const std::string& model_dir, const SnapshotListing& l) {
  Json j = {{"step", l.step},       {"created", l.created}, {"created_local", LocalTime(l.created)},
            {"bytes", l.bytes},     {"committed", l.committed}, {"global_step", nullptr}};
  if (!l.committed) return j;
  StatusOr<SnapshotManifest> m = ReadManifest(model_dir, l.step);
  if (m.ok()) {
    j["global_step"] = m->global_step;
  } else {
    j["error"] = m.status().ToString();
  }
  return j;
}

int RunSnapshots(const CLI::App& c) {
  const std::string dir = DirOf(c);
  Status checked = CheckModelDir(dir);
  if (!checked.ok()) return Fail("snapshots", checked);
  StatusOr<std::vector<SnapshotListing>> listing = ListSnapshots(dir);
  if (!listing.ok()) return Fail("snapshots", listing.status());
  Json rows = Json::array();
  for (const SnapshotListing& l : *listing) rows.push_back(ListingJson(dir, l));
  if (JsonFlag(c)) {
    fmt::print("{}\n", rows.dump(2));
    return 0;
  }
  if (rows.empty()) {
    fmt::print("no snapshots in '{}'\n", dir);
    return 0;
  }
  fmt::print("{:>12}  {:<19}  {:>10}  {:<11}  {:>12}\n", "step", "created", "size (MiB)", "state", "global step");
  for (const Json& r : rows) {
    std::string global = "-";
    if (!r["global_step"].is_null()) global = std::to_string(r["global_step"].get<int64_t>());
    if (r.contains("error")) global = "unreadable manifest";
    fmt::print("{:>12}  {:<19}  {:>10.2f}  {:<11}  {:>12}\n", r["step"].get<int64_t>(),
               r["created_local"].get<std::string>(), r["bytes"].get<uint64_t>() / kMiB,
               r["committed"].get<bool>() ? "committed" : "uncommitted", global);
  }
  return 0;
}

int RunInspect(const CLI::App& c) {
  const std::string dir = DirOf(c);
  SnapshotManifest m;
  // Summaries only: one variable's values are in memory at a time. Nothing
  // is printed until every variable has been read and checked.
  std::vector<TensorSummary> tensors;
  std::vector<SparseSummary> tables;
  Status read = VisitSnapshot(dir, c.get_option("--step")->as<int64_t>(), c.get_option("--var")->as<std::string>(),
                              &m, [&](std::vector<SnapshotTensor> variable) {
                                for (const SnapshotTensor& t : variable) tensors.push_back(Summarize(t));
                                const ManifestSparseTable* table =
                                    variable.empty() || variable[0].sparse_table.empty()
                                        ? nullptr
                                        : m.FindSparseTable(variable[0].sparse_table);
                                if (table && variable.size() >= 2) {  // ids, values, slots
                                  SparseSummary st{table->spec.name, table->spec.dim, table->rows(), 0,
                                                   table->rows_per_server, StatsOf(variable[1].value)};
                                  for (const SnapshotTensor& t : variable) st.bytes += t.value.byte_size();
                                  tables.push_back(std::move(st));
                                }
                                return Status::OK();
                              });
  if (!read.ok()) return Fail("inspect", read);
  if (JsonFlag(c)) {
    Json j = ManifestJson(dir, m);
    j["tensors"] = Json::array();
    for (const TensorSummary& t : tensors) j["tensors"].push_back(TensorJson(t));
    j["sparse_tables"] = Json::array();
    for (const SparseSummary& t : tables) j["sparse_tables"].push_back(SparseJson(t));
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("snapshot {} of '{}': global step {}, {} server(s), created {}, optimizer {} (learning rate {:g}), {}, "
             "{} ({} bytes)\n\n",
             m.step, dir, m.global_step, m.num_servers, LocalTime(m.created), m.optimizer.kind,
             m.optimizer.learning_rate, ConsistencyName(m.mode.consistency), FormatBytes(m.bytes), m.bytes);
  PrintTensorTable(tensors);
  PrintSparseTables(tables);
  PrintManifestTail(m);
  return 0;
}

int RunExport(const CLI::App& c) {
  const std::string dir = DirOf(c);
  const std::string out = c.get_option("--out")->as<std::string>();
  // Fails before reading what may be gigabytes, not after.
  const fs::path parent = fs::path(out).parent_path().empty() ? fs::path(".") : fs::path(out).parent_path();
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) {
    return Fail("export", NotFound("--out '" + out + "': no directory '" + parent.string() + "'"));
  }
  // libzip writes the archive when it is closed, reading each array then:
  // every array is added with a loader that reads it from the snapshot
  // when its turn comes (a dense variable's value and each slot one part
  // at a time, a sparse table whole), so one of them is in memory at a
  // time. The archive appears at `out` only once every array is in.
  const int64_t step = c.get_option("--step")->as<int64_t>();
  SnapshotManifest m;
  size_t arrays = 0, variables = 0, tables = 0, slots = 0;
  auto write = [&]() -> Status {
    if (step < -1) return InvalidArgument("no snapshot step " + std::to_string(step) + ": steps are >= 0 (-1: the newest)");
    RETURN_IF_ERROR(CheckModelDir(dir));
    std::shared_ptr<SnapshotReader> reader;
    {
      ASSIGN_OR_RETURN(std::unique_ptr<SnapshotReader> opened, SnapshotReader::Open(dir, step));
      reader = std::move(opened);
    }
    m = reader->manifest();
    ASSIGN_OR_RETURN(std::unique_ptr<NpzWriter> writer, NpzWriter::Create(out));
    for (const ManifestVariable& v : m.variables) {  // sorted by name; each value, then its slots by name
      std::vector<std::pair<std::string, int>> parts = {{v.spec.name, 0}};
      for (size_t k = 0; k < v.slots.size(); ++k) parts.push_back({SlotName(v, v.slots[k]), static_cast<int>(1 + k)});
      std::sort(parts.begin() + 1, parts.end());
      for (const auto& [name, part] : parts) {
        RETURN_IF_ERROR(writer->Add(name, [reader, variable = v.spec.name, part = part] {
          return reader->ReadPart(variable, part);
        }));
        ++arrays;
      }
      ++variables;
      slots += v.slots.size();
    }
    for (const ManifestSparseTable& t : m.sparse_tables) {  // after the variables, one table at a time
      // The table's arrays come from one read; the first to be written
      // reads them all, each hands its own over, and the last empties it.
      auto rows = std::make_shared<std::map<std::string, Tensor>>();
      std::vector<std::string> names = {t.spec.name + "/ids", t.spec.name + "/values"};
      for (const std::string& slot : t.slots) names.push_back(SlotName(t, slot));
      std::sort(names.begin() + 2, names.end());
      for (const std::string& name : names) {
        RETURN_IF_ERROR(writer->Add(name, [reader, t, rows, name]() -> StatusOr<Tensor> {
          if (rows->empty()) {
            std::vector<SnapshotTensor> tensors;
            RETURN_IF_ERROR(ReadSparseTable(*reader, t, &tensors));
            for (SnapshotTensor& x : tensors) (*rows)[x.name] = std::move(x.value);
          }
          auto it = rows->find(name);
          if (it == rows->end()) return DataLoss("sparse table '" + t.spec.name + "' has no array '" + name + "'");
          Tensor value = std::move(it->second);
          rows->erase(it);
          return value;
        }));
        ++arrays;
      }
      ++tables;
      slots += t.slots.size();
    }
    return writer->Finish();
  };
  if (Status written = write(); !written.ok()) {
    return Fail("export", written.WithContext("writing '" + out + "' from snapshot " +
                                              (step == -1 ? std::string("(the newest)") : std::to_string(step))));
  }
  const uintmax_t bytes = fs::file_size(out, ec);
  fmt::print("exported snapshot {} (global step {}) to '{}': {} arrays ({} variables, {} sparse tables, {} slots), {}\n",
             m.step, m.global_step, out, arrays, variables, tables, slots,
             ec ? std::string("size unknown") : FormatBytes(bytes));
  return 0;
}

}  // namespace

StatusOr<std::vector<SnapshotTensor>> ReadSnapshot(const std::string& model_dir, int64_t step, const std::string& only,
                                                   SnapshotManifest* manifest) {
  SnapshotManifest m;
  std::vector<SnapshotTensor> tensors;
  RETURN_IF_ERROR(VisitSnapshot(model_dir, step, only, &m, [&](std::vector<SnapshotTensor> variable) {
    for (SnapshotTensor& t : variable) tensors.push_back(std::move(t));
    return Status::OK();
  }));
  if (manifest) *manifest = std::move(m);
  return tensors;
}

void AddSnapshotTools(CLI::App& app) {
  CLI::App* list = app.add_subcommand("snapshots", "List a model directory's snapshots: step, time, size, committed");
  AddDirOption(list);
  list->add_flag("--json")->description("Print a JSON array instead of a table");

  CLI::App* inspect = app.add_subcommand(
      "inspect", "Show a snapshot: its variables and slots (dtype, shape, min/max/mean), collections, workers");
  AddDirOption(inspect);
  AddStepOption(inspect);
  inspect->add_option("--var", "Only this variable (and its slots)")->default_val("");
  inspect->add_flag("--json")->description("Print one JSON object instead of tables");

  CLI::App* exp = app.add_subcommand("export", "Write a snapshot's variables and slots to a NumPy .npz archive");
  AddDirOption(exp);
  AddStepOption(exp);
  exp->add_option("--out", "Archive to write, e.g. model.npz (keys are variable and slot names)")->required();
}

int RunSnapshotTools(CLI::App& app) {
  if (app.got_subcommand("snapshots")) return RunSnapshots(*app.get_subcommand("snapshots"));
  if (app.got_subcommand("inspect")) return RunInspect(*app.get_subcommand("inspect"));
  if (app.got_subcommand("export")) return RunExport(*app.get_subcommand("export"));
  return -1;
}

}  // namespace cairn
