#include "common/snapshot/manifest.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>
#include <xxhash.h>

namespace cairn {
namespace {

// Keeps the fields in the order they are written, so a manifest reads top-down
// (format, step, ... job_config) when someone opens it.
using Json = nlohmann::ordered_json;

constexpr char kManifestFormat[] = "cairn-snapshot-manifest";
constexpr int kManifestVersion = 1;

// ---- Manifest encoding ----

// JSON has no NaN or infinity; nlohmann would write them as null.
Json EncodeDouble(double v) {
  if (std::isfinite(v)) return v;
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

Json EncodeInit(const InitializerSpec& init) {
  return {{"kind", InitKindName(init.kind)}, {"value", EncodeDouble(init.value)},
          {"minval", EncodeDouble(init.minval)}, {"maxval", EncodeDouble(init.maxval)},
          {"mean", EncodeDouble(init.mean)}, {"stddev", EncodeDouble(init.stddev)},
          {"seed", init.seed}};
}

Json EncodeSpec(const VariableSpec& spec) {
  Json j;
  j["name"] = spec.name;
  j["shape"] = spec.shape;
  j["dtype"] = DTypeName(spec.dtype);
  j["initializer"] = EncodeInit(spec.init);
  j["trainable"] = spec.trainable;
  return j;
}

Json EncodeSparseTable(const ManifestSparseTable& t) {
  Json scalar_slots = Json::array();
  for (bool s : t.scalar_slots) scalar_slots.push_back(s);
  return {{"spec", {{"name", t.spec.name}, {"dim", t.spec.dim}, {"initializer", EncodeInit(t.spec.init)},
                    {"trainable", t.spec.trainable}}},
          {"optimizer", t.optimizer},
          {"slots", t.slots},
          {"scalar_slots", scalar_slots},
          {"rows_per_server", t.rows_per_server}};
}

Json EncodeOptimizer(const OptimizerSpec& o) {
  return {{"kind", o.kind},
          {"learning_rate", EncodeDouble(o.learning_rate)},
          {"momentum", EncodeDouble(o.momentum)},
          {"nesterov", o.nesterov},
          {"beta1", EncodeDouble(o.beta1)},
          {"beta2", EncodeDouble(o.beta2)},
          {"epsilon", EncodeDouble(o.epsilon)},
          {"initial_accumulator", EncodeDouble(o.initial_accumulator)},
          {"l1", EncodeDouble(o.l1)},
          {"l2", EncodeDouble(o.l2)},
          {"lr_power", EncodeDouble(o.lr_power)}};
}

Json EncodeManifest(const SnapshotManifest& m) {
  Json j;
  j["format"] = kManifestFormat;
  j["version"] = kManifestVersion;
  j["step"] = m.step;
  j["global_step"] = m.global_step;
  j["created"] = EncodeDouble(m.created);
  j["num_servers"] = m.num_servers;
  j["mode"] = {{"consistency", ConsistencyName(m.mode.consistency)},
               {"num_workers", m.mode.num_workers},
               {"sync_timeout_ms", m.mode.sync_timeout_ms}};
  if (m.mode.ssp()) j["mode"]["staleness"] = m.mode.staleness;  // only ssp has one: older manifests stay as they were
  j["optimizer"] = EncodeOptimizer(m.optimizer);
  j["variables"] = Json::array();
  for (const ManifestVariable& v : m.variables) {
    Json scalar_slots = Json::array();
    for (bool s : v.scalar_slots) scalar_slots.push_back(s);
    j["variables"].push_back(
        {{"spec", EncodeSpec(v.spec)}, {"optimizer", v.optimizer}, {"slots", v.slots}, {"scalar_slots", scalar_slots}});
  }
  j["shards"] = Json::array();
  for (const ManifestShard& s : m.shards) {
    j["shards"].push_back(
        {{"variable", s.variable}, {"row_begin", s.row_begin}, {"row_end", s.row_end}, {"server", s.server}});
  }
  // Written only when there are some, so a dense-only manifest reads as before.
  if (!m.sparse_tables.empty()) {
    j["sparse_tables"] = Json::array();
    for (const ManifestSparseTable& t : m.sparse_tables) j["sparse_tables"].push_back(EncodeSparseTable(t));
  }
  j["collections"] = Json::object();
  for (const auto& [name, members] : m.collections) j["collections"][name] = members;
  j["workers"] = Json::array();
  for (const WorkerState& w : m.workers) {
    j["workers"].push_back({{"worker", w.worker},
                            {"steps", w.steps},
                            {"epoch", w.epoch},
                            {"step_in_epoch", w.step_in_epoch},
                            {"seed", w.seed}});
  }
  j["job_config"] = m.job_config;
  j["bytes"] = m.bytes;
  return j;
}

std::string ChecksumLine(std::string_view json_text) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "xxh3 %016" PRIx64 "\n",
                static_cast<uint64_t>(XXH3_64bits(json_text.data(), json_text.size())));
  return buf;
}

// The JSON text of a manifest file whose checksum line matches; an error
// detail otherwise.
std::optional<std::string_view> VerifyChecksum(std::string_view content, std::string* detail) {
  if (content.empty() || content.back() != '\n') {
    *detail = "it does not end with a newline";
    return std::nullopt;
  }
  const size_t line_start = content.rfind('\n', content.size() - 2);
  if (line_start == std::string_view::npos) {
    *detail = "it has no checksum line";
    return std::nullopt;
  }
  const std::string_view json_text = content.substr(0, line_start);
  const std::string_view line = content.substr(line_start + 1);
  if (line.substr(0, 5) != "xxh3 " || line.size() != 5 + 16 + 1) {
    *detail = "its last line is not an xxh3 checksum";
    return std::nullopt;
  }
  if (line != ChecksumLine(json_text)) {
    *detail = "its checksum does not match its contents";
    return std::nullopt;
  }
  return json_text;
}

// ---- Manifest decoding ----

// A JSON value and where it sits ("variables[2].spec.shape"), for messages.
struct Node {
  const Json* value = nullptr;  // nullptr: missing
  std::string path;
};

Node Member(const Node& n, const char* key) {
  Node m{nullptr, n.path.empty() ? key : n.path + "." + key};
  if (n.value != nullptr && n.value->is_object()) {
    auto it = n.value->find(key);
    if (it != n.value->end()) m.value = &*it;
  }
  return m;
}

Node Element(const Node& n, size_t i) { return {&(*n.value)[i], n.path + "[" + std::to_string(i) + "]"}; }

// Reads typed values, remembering the first problem: a bad field yields a
// default and the caller checks ok() once at the end.
class Decoder {
 public:
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  int64_t Int(const Node& n, int64_t lo = std::numeric_limits<int64_t>::min(),
              int64_t hi = std::numeric_limits<int64_t>::max()) {
    if (!Expect(n, n.value != nullptr && n.value->is_number_integer(), "an integer")) return 0;
    const bool fits = !n.value->is_number_unsigned() || n.value->get<uint64_t>() <= static_cast<uint64_t>(hi);
    const int64_t v = fits ? n.value->get<int64_t>() : 0;
    return Expect(n, fits && v >= lo && v <= hi, "in range") ? v : 0;
  }
  int Int32(const Node& n) {
    return static_cast<int>(Int(n, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
  }
  uint64_t Uint(const Node& n) {
    if (!Expect(n, n.value != nullptr && n.value->is_number_unsigned(), "an unsigned integer")) return 0;
    return n.value->get<uint64_t>();
  }
  double Double(const Node& n) {
    if (n.value != nullptr && n.value->is_number()) return n.value->get<double>();
    if (n.value != nullptr && n.value->is_string()) {
      const std::string& s = n.value->get_ref<const std::string&>();
      if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
      if (s == "inf") return std::numeric_limits<double>::infinity();
      if (s == "-inf") return -std::numeric_limits<double>::infinity();
    }
    Expect(n, false, "a number");
    return 0;
  }
  bool Bool(const Node& n) {
    return Expect(n, n.value != nullptr && n.value->is_boolean(), "a boolean") && n.value->get<bool>();
  }
  std::string String(const Node& n) {
    if (!Expect(n, n.value != nullptr && n.value->is_string(), "a string")) return "";
    return n.value->get<std::string>();
  }
  // The length of an array; 0 (after recording the error) if `n` is not one.
  size_t Size(const Node& n) {
    return Expect(n, n.value != nullptr && n.value->is_array(), "an array") ? n.value->size() : 0;
  }
  bool IsObject(const Node& n) { return Expect(n, n.value != nullptr && n.value->is_object(), "an object"); }
  std::vector<std::string> Strings(const Node& n) {
    std::vector<std::string> out(Size(n));
    for (size_t i = 0; i < out.size(); ++i) out[i] = String(Element(n, i));
    return out;
  }
  // Records "field '<path>' is missing" / "... is not <expected>" unless
  // `good` (or an earlier error was recorded); returns `good`.
  bool Expect(const Node& n, bool good, const std::string& expected) {
    if (!good && ok()) error_ = "field '" + n.path + "' is " + (n.value == nullptr ? "missing" : "not " + expected);
    return good;
  }

 private:
  std::string error_;
};

InitializerSpec DecodeInit(Decoder& d, const Node& init) {
  InitializerSpec out;
  const Node kind = Member(init, "kind");
  StatusOr<InitKind> parsed_kind = ParseInitKind(d.String(kind));
  if (d.Expect(kind, parsed_kind.ok(), "an initializer kind")) out.kind = *parsed_kind;
  out.value = d.Double(Member(init, "value"));
  out.minval = d.Double(Member(init, "minval"));
  out.maxval = d.Double(Member(init, "maxval"));
  out.mean = d.Double(Member(init, "mean"));
  out.stddev = d.Double(Member(init, "stddev"));
  out.seed = d.Uint(Member(init, "seed"));
  return out;
}

VariableSpec DecodeSpec(Decoder& d, const Node& n) {
  VariableSpec spec;
  spec.name = d.String(Member(n, "name"));
  const Node shape = Member(n, "shape");
  spec.shape.resize(d.Size(shape));
  for (size_t i = 0; i < spec.shape.size(); ++i) spec.shape[i] = d.Int(Element(shape, i));
  const Node dtype = Member(n, "dtype");
  StatusOr<DType> parsed_dtype = ParseDType(d.String(dtype));
  if (d.Expect(dtype, parsed_dtype.ok(), "a dtype")) spec.dtype = *parsed_dtype;
  spec.init = DecodeInit(d, Member(n, "initializer"));
  spec.trainable = d.Bool(Member(n, "trainable"));
  return spec;
}

ManifestSparseTable DecodeSparseTable(Decoder& d, const Node& n) {
  ManifestSparseTable t;
  const Node spec = Member(n, "spec");
  t.spec.name = d.String(Member(spec, "name"));
  t.spec.dim = d.Int32(Member(spec, "dim"));
  t.spec.init = DecodeInit(d, Member(spec, "initializer"));
  t.spec.trainable = d.Bool(Member(spec, "trainable"));
  t.optimizer = d.String(Member(n, "optimizer"));
  t.slots = d.Strings(Member(n, "slots"));
  const Node scalar_slots = Member(n, "scalar_slots");
  t.scalar_slots.resize(d.Size(scalar_slots));
  for (size_t i = 0; i < t.scalar_slots.size(); ++i) t.scalar_slots[i] = d.Bool(Element(scalar_slots, i));
  const Node rows = Member(n, "rows_per_server");
  t.rows_per_server.resize(d.Size(rows));
  for (size_t i = 0; i < t.rows_per_server.size(); ++i) t.rows_per_server[i] = d.Int(Element(rows, i), 0);
  return t;
}

OptimizerSpec DecodeOptimizer(Decoder& d, const Node& n) {
  OptimizerSpec o;
  o.kind = d.String(Member(n, "kind"));
  o.learning_rate = d.Double(Member(n, "learning_rate"));
  o.momentum = d.Double(Member(n, "momentum"));
  o.nesterov = d.Bool(Member(n, "nesterov"));
  o.beta1 = d.Double(Member(n, "beta1"));
  o.beta2 = d.Double(Member(n, "beta2"));
  o.epsilon = d.Double(Member(n, "epsilon"));
  o.initial_accumulator = d.Double(Member(n, "initial_accumulator"));
  o.l1 = d.Double(Member(n, "l1"));
  o.l2 = d.Double(Member(n, "l2"));
  o.lr_power = d.Double(Member(n, "lr_power"));
  return o;
}

ManifestVariable DecodeVariable(Decoder& d, const Node& n) {
  ManifestVariable v;
  v.spec = DecodeSpec(d, Member(n, "spec"));
  v.optimizer = d.String(Member(n, "optimizer"));
  v.slots = d.Strings(Member(n, "slots"));
  const Node scalar_slots = Member(n, "scalar_slots");
  v.scalar_slots.resize(d.Size(scalar_slots));
  for (size_t i = 0; i < v.scalar_slots.size(); ++i) v.scalar_slots[i] = d.Bool(Element(scalar_slots, i));
  return v;
}

void DecodeLists(Decoder& d, const Node& root, SnapshotManifest* m) {
  const Node variables = Member(root, "variables");
  for (size_t i = 0, n = d.Size(variables); i < n; ++i) m->variables.push_back(DecodeVariable(d, Element(variables, i)));
  const Node shards = Member(root, "shards");
  for (size_t i = 0, n = d.Size(shards); i < n; ++i) {
    const Node s = Element(shards, i);
    m->shards.push_back({d.String(Member(s, "variable")), d.Int(Member(s, "row_begin")), d.Int(Member(s, "row_end")),
                         d.Int32(Member(s, "server"))});
  }
  const Node sparse = Member(root, "sparse_tables");
  if (sparse.value != nullptr) {  // absent from manifests written before sparse tables
    for (size_t i = 0, n = d.Size(sparse); i < n; ++i) {
      m->sparse_tables.push_back(DecodeSparseTable(d, Element(sparse, i)));
    }
  }
  const Node collections = Member(root, "collections");
  if (d.IsObject(collections)) {
    for (auto it = collections.value->begin(); it != collections.value->end(); ++it) {
      m->collections[it.key()] = d.Strings(Node{&it.value(), collections.path + "['" + it.key() + "']"});
    }
  }
  const Node workers = Member(root, "workers");
  for (size_t i = 0, n = d.Size(workers); i < n; ++i) {
    const Node w = Element(workers, i);
    m->workers.push_back({d.Int32(Member(w, "worker")), d.Int(Member(w, "steps")), d.Int(Member(w, "epoch")),
                          d.Int(Member(w, "step_in_epoch")), d.Uint(Member(w, "seed"))});
  }
}

SnapshotManifest DecodeManifest(Decoder& d, const Json& json) {
  const Node root{&json, ""};
  SnapshotManifest m;
  if (!d.IsObject(Node{&json, "(top level)"})) return m;
  const Node format = Member(root, "format");
  d.Expect(format, d.String(format) == kManifestFormat, std::string("\"") + kManifestFormat + "\"");
  const Node version = Member(root, "version");
  d.Expect(version, d.Int(version) == kManifestVersion, "version " + std::to_string(kManifestVersion));
  m.step = d.Int(Member(root, "step"));
  m.global_step = d.Int(Member(root, "global_step"));
  m.created = d.Double(Member(root, "created"));
  m.num_servers = d.Int32(Member(root, "num_servers"));
  const Node mode = Member(root, "mode");
  const Node consistency = Member(mode, "consistency");
  StatusOr<Consistency> parsed_consistency = ParseConsistency(d.String(consistency));
  if (d.Expect(consistency, parsed_consistency.ok(), "async, sync or ssp")) m.mode.consistency = *parsed_consistency;
  if (m.mode.ssp()) m.mode.staleness = d.Int32(Member(mode, "staleness"));
  m.mode.num_workers = d.Int32(Member(mode, "num_workers"));
  m.mode.sync_timeout_ms = d.Int(Member(mode, "sync_timeout_ms"));
  m.optimizer = DecodeOptimizer(d, Member(root, "optimizer"));
  DecodeLists(d, root, &m);
  m.job_config = d.String(Member(root, "job_config"));
  m.bytes = d.Uint(Member(root, "bytes"));
  return m;
}

}  // namespace

int64_t ManifestSparseTable::rows() const {
  int64_t total = 0;
  for (int64_t n : rows_per_server) total += n;
  return total;
}

const ManifestSparseTable* SnapshotManifest::FindSparseTable(const std::string& name) const {
  for (const ManifestSparseTable& t : sparse_tables) {
    if (t.spec.name == name) return &t;
  }
  return nullptr;
}

const ManifestVariable* SnapshotManifest::FindVariable(const std::string& name) const {
  auto it = std::find_if(variables.begin(), variables.end(),
                         [&](const ManifestVariable& v) { return v.spec.name == name; });
  return it == variables.end() ? nullptr : &*it;
}

StatusOr<std::string> EncodeManifestFile(const SnapshotManifest& m) {
  std::string text;
  try {
    // Strict: a string that is not UTF-8 fails here rather than being
    // replaced, so what is read back is what was committed.
    text = EncodeManifest(m).dump(2, ' ', /*ensure_ascii=*/false, Json::error_handler_t::strict);
  } catch (const Json::exception& e) {
    return InvalidArgument("manifest for step " + std::to_string(m.step) + " cannot be encoded: " + e.what());
  }
  text += "\n";
  text += ChecksumLine(std::string_view(text).substr(0, text.size() - 1));
  return text;
}

StatusOr<SnapshotManifest> DecodeManifestFile(std::string_view content, const std::string& path) {
  std::string detail;
  const std::optional<std::string_view> json_text = VerifyChecksum(content, &detail);
  if (!json_text) return DataLoss("manifest '" + path + "' is truncated or corrupted: " + detail);
  Json json;
  try {
    json = Json::parse(json_text->begin(), json_text->end(), nullptr, /*allow_exceptions=*/false);
  } catch (const Json::exception&) {
    json = Json::value_t::discarded;
  }
  if (json.is_discarded()) return DataLoss("manifest '" + path + "' is not valid JSON");
  Decoder decoder;
  SnapshotManifest manifest = DecodeManifest(decoder, json);
  if (!decoder.ok()) return DataLoss("manifest '" + path + "' does not decode: " + decoder.error());
  return manifest;
}

}  // namespace cairn
