#include "ps/model_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include "common/crash_point.h"
#include "common/file_io.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
// Keeps the fields in the order they are written, so a manifest reads top-down
// (format, step, ... job_config) when someone opens it.
using Json = nlohmann::ordered_json;

constexpr char kMarkerName[] = "cairn-model-dir";
constexpr char kMarkerText[] = "cairn model directory, format 1\n";
constexpr char kManifestFormat[] = "cairn-snapshot-manifest";
constexpr int kManifestVersion = 1;
constexpr char kSnapshotPrefix[] = "snapshot-";
constexpr char kManifestSuffix[] = ".manifest";
constexpr char kTmpSuffix[] = ".manifest.tmp-";

// ---- Files ----


// Writes `content` to `path` (created or truncated) and fsyncs it.
Status WriteFileSynced(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "cannot create '" + path + "'");
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "cannot write '" + path + "'");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, "cannot sync '" + path + "'");
  }
  if (::close(fd) != 0) return ErrnoStatus(errno, "cannot close '" + path + "'");
  return Status::OK();
}

// Makes a rename or removal in `dir` durable.

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, "cannot open '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return DataLoss("cannot read '" + path + "'");
  return ss.str();
}

// Unix seconds; 0 if the file has gone.
double ModifiedTime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec * 1e-9;
}

uint64_t FileBytes(const std::string& path) {
  std::error_code ec;
  const uintmax_t n = fs::file_size(path, ec);
  return ec ? 0 : n;
}

// Regular files under `dir`; files removed while we count are skipped.
uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code file_ec;
    if (it->is_regular_file(file_ec)) {
      const uintmax_t n = it->file_size(file_ec);
      if (!file_ec) total += n;
    }
  }
  return total;
}

// ---- Directory scan ----

std::string StepDigits(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%012lld", static_cast<long long>(step));
  return buf;
}

// "snapshot-<step:012>" followed by `rest`: the step and rest, or nullopt
// for any other name (including unpadded digits, which Cairn never writes).
std::optional<int64_t> ParseSnapshotName(std::string_view name, std::string_view* rest) {
  constexpr std::string_view prefix = kSnapshotPrefix;
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  name.remove_prefix(prefix.size());
  const size_t digits = std::min(name.find_first_not_of("0123456789"), name.size());
  if (digits == 0 || digits > 18) return std::nullopt;
  int64_t step = 0;
  std::from_chars(name.data(), name.data() + digits, step);
  if (StepDigits(step) != name.substr(0, digits)) return std::nullopt;
  *rest = name.substr(digits);
  return step;
}

struct SnapshotFiles {
  bool dir = false;
  bool manifest = false;
};

struct ModelDirScan {
  std::map<int64_t, SnapshotFiles> snapshots;
  std::vector<std::pair<int64_t, std::string>> tmp_manifests;  // step, path: left by a crashed commit
};

StatusOr<ModelDirScan> ScanModelDir(const std::string& model_dir) {
  RETURN_IF_ERROR(CheckModelDir(model_dir));
  ModelDirScan scan;
  std::error_code ec;
  for (auto it = fs::directory_iterator(model_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::string_view rest;
    const std::optional<int64_t> step = ParseSnapshotName(name, &rest);
    if (!step) continue;
    std::error_code type_ec;
    if (rest.empty() && it->is_directory(type_ec)) {
      scan.snapshots[*step].dir = true;
    } else if (rest == kManifestSuffix && it->is_regular_file(type_ec)) {
      scan.snapshots[*step].manifest = true;
    } else if (rest.substr(0, std::string_view(kTmpSuffix).size()) == kTmpSuffix) {
      scan.tmp_manifests.emplace_back(*step, it->path().string());
    }
  }
  if (ec) return ErrnoStatus(ec.value(), "cannot list model directory '" + model_dir + "'");
  return scan;
}

// ---- Manifest encoding ----

// JSON has no NaN or infinity; nlohmann would write them as null.
Json EncodeDouble(double v) {
  if (std::isfinite(v)) return v;
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

Json EncodeSpec(const VariableSpec& spec) {
  const InitializerSpec& init = spec.init;
  Json j;
  j["name"] = spec.name;
  j["shape"] = spec.shape;
  j["dtype"] = DTypeName(spec.dtype);
  j["initializer"] = {{"kind", InitKindName(init.kind)}, {"value", EncodeDouble(init.value)},
                      {"minval", EncodeDouble(init.minval)}, {"maxval", EncodeDouble(init.maxval)},
                      {"mean", EncodeDouble(init.mean)}, {"stddev", EncodeDouble(init.stddev)},
                      {"seed", init.seed}};
  j["trainable"] = spec.trainable;
  return j;
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
  j["mode"] = {{"consistency", m.mode.consistency},
               {"num_workers", m.mode.num_workers},
               {"sync_timeout_ms", m.mode.sync_timeout_ms}};
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

// The manifest file's bytes: JSON, "\n", then the checksum line.
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

VariableSpec DecodeSpec(Decoder& d, const Node& n) {
  VariableSpec spec;
  spec.name = d.String(Member(n, "name"));
  const Node shape = Member(n, "shape");
  spec.shape.resize(d.Size(shape));
  for (size_t i = 0; i < spec.shape.size(); ++i) spec.shape[i] = d.Int(Element(shape, i));
  const Node dtype = Member(n, "dtype");
  StatusOr<DType> parsed_dtype = ParseDType(d.String(dtype));
  if (d.Expect(dtype, parsed_dtype.ok(), "a dtype")) spec.dtype = *parsed_dtype;
  const Node init = Member(n, "initializer");
  const Node kind = Member(init, "kind");
  StatusOr<InitKind> parsed_kind = ParseInitKind(d.String(kind));
  if (d.Expect(kind, parsed_kind.ok(), "an initializer kind")) spec.init.kind = *parsed_kind;
  spec.init.value = d.Double(Member(init, "value"));
  spec.init.minval = d.Double(Member(init, "minval"));
  spec.init.maxval = d.Double(Member(init, "maxval"));
  spec.init.mean = d.Double(Member(init, "mean"));
  spec.init.stddev = d.Double(Member(init, "stddev"));
  spec.init.seed = d.Uint(Member(init, "seed"));
  spec.trainable = d.Bool(Member(n, "trainable"));
  return spec;
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
  m.mode.consistency = d.String(Member(mode, "consistency"));
  m.mode.num_workers = d.Int32(Member(mode, "num_workers"));
  m.mode.sync_timeout_ms = d.Int(Member(mode, "sync_timeout_ms"));
  m.optimizer = DecodeOptimizer(d, Member(root, "optimizer"));
  DecodeLists(d, root, &m);
  m.job_config = d.String(Member(root, "job_config"));
  m.bytes = d.Uint(Member(root, "bytes"));
  return m;
}

// ---- Retention ----

// Removes a file or a directory tree.
Status RemovePath(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot remove '" + path + "'");
  return Status::OK();
}

}  // namespace

const ManifestVariable* SnapshotManifest::FindVariable(const std::string& name) const {
  auto it = std::find_if(variables.begin(), variables.end(),
                         [&](const ManifestVariable& v) { return v.spec.name == name; });
  return it == variables.end() ? nullptr : &*it;
}

std::string SnapshotDirPath(const std::string& model_dir, int64_t step) {
  return model_dir + "/" + kSnapshotPrefix + StepDigits(step);
}

std::string ServerDbPath(const std::string& model_dir, int64_t step, int server) {
  return SnapshotDirPath(model_dir, step) + "/server-" + std::to_string(server) + ".db";
}

std::string ManifestPath(const std::string& model_dir, int64_t step) {
  return SnapshotDirPath(model_dir, step) + kManifestSuffix;
}

Status PrepareModelDir(const std::string& model_dir) {
  std::error_code ec;
  if (fs::exists(model_dir, ec) && !fs::is_directory(model_dir, ec)) {
    return FailedPrecondition("model directory '" + model_dir + "' is not a directory");
  }
  fs::create_directories(model_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot create model directory '" + model_dir + "'");
  const std::string marker = model_dir + "/" + kMarkerName;
  if (fs::exists(marker, ec)) return Status::OK();
  const bool empty = fs::is_empty(model_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot list model directory '" + model_dir + "'");
  if (!empty) {
    return FailedPrecondition("'" + model_dir + "' is not a Cairn model directory (it has files but no " +
                              kMarkerName + " marker)");
  }
  // Written in place, not renamed: a second process preparing the same
  // directory must never see a temporary file and take the directory for
  // someone else's.
  RETURN_IF_ERROR(WriteFileSynced(marker, kMarkerText));
  return SyncDir(model_dir);
}

Status CheckModelDir(const std::string& model_dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(model_dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return ErrnoStatus(ec.value(), "cannot open model directory '" + model_dir + "'");
  }
  if (!fs::exists(st)) return NotFound("model directory '" + model_dir + "' does not exist");
  if (!fs::is_directory(st)) return FailedPrecondition("model directory '" + model_dir + "' is not a directory");
  if (!fs::exists(model_dir + "/" + kMarkerName, ec)) {
    return FailedPrecondition("'" + model_dir + "' is not a Cairn model directory (it has no " + kMarkerName +
                              " marker)");
  }
  return Status::OK();
}

Status CommitManifest(const std::string& model_dir, const SnapshotManifest& manifest) {
  RETURN_IF_ERROR(CheckModelDir(model_dir).WithContext("commit of step " + std::to_string(manifest.step)));
  if (manifest.step < 0) return InvalidArgument("cannot commit negative step " + std::to_string(manifest.step));
  ASSIGN_OR_RETURN(const std::string content, EncodeManifestFile(manifest));
  const std::string path = ManifestPath(model_dir, manifest.step);
  std::error_code ec;
  // Only the chief commits, so check-then-rename does not race with another
  // commit of the same step.
  if (fs::exists(path, ec)) {
    return AlreadyExists("step " + std::to_string(manifest.step) + " is already committed in '" + model_dir + "'");
  }
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  Status s = WriteFileSynced(tmp, content);
  CrashPoint("manifest.before_rename");
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoStatus(errno, "cannot rename '" + tmp + "' to '" + path + "'");
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return SyncDir(model_dir);
}

StatusOr<SnapshotManifest> ReadManifest(const std::string& model_dir, int64_t step) {
  const std::string path = ManifestPath(model_dir, step);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    RETURN_IF_ERROR(CheckModelDir(model_dir));
    return NotFound("step " + std::to_string(step) + " was never committed in '" + model_dir + "'");
  }
  ASSIGN_OR_RETURN(const std::string content, ReadFile(path));
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
  if (manifest.step != step) {
    return DataLoss("manifest '" + path + "' is for step " + std::to_string(manifest.step) + ", not " +
                    std::to_string(step));
  }
  return manifest;
}

StatusOr<std::vector<SnapshotListing>> ListSnapshots(const std::string& model_dir) {
  ASSIGN_OR_RETURN(const ModelDirScan scan, ScanModelDir(model_dir));
  std::vector<SnapshotListing> listing;
  for (const auto& [step, files] : scan.snapshots) {
    SnapshotListing l;
    l.step = step;
    l.committed = files.manifest;
    const std::string dir = SnapshotDirPath(model_dir, step);
    if (files.dir) l.bytes += TreeBytes(dir);
    if (files.manifest) {
      const std::string manifest_path = ManifestPath(model_dir, step);
      l.bytes += FileBytes(manifest_path);
      // A manifest that does not read still marks a commit: restore reports
      // the damage, listing shows the step.
      StatusOr<SnapshotManifest> manifest = ReadManifest(model_dir, step);
      l.created = manifest.ok() ? manifest->created : ModifiedTime(manifest_path);
    } else {
      l.created = ModifiedTime(dir);
    }
    listing.push_back(l);
  }
  return listing;
}

StatusOr<int64_t> LatestCommittedStep(const std::string& model_dir) {
  ASSIGN_OR_RETURN(const ModelDirScan scan, ScanModelDir(model_dir));
  for (auto it = scan.snapshots.rbegin(); it != scan.snapshots.rend(); ++it) {
    if (it->second.manifest) return it->first;
  }
  return NotFound("no committed snapshot in '" + model_dir + "'");
}

std::vector<int64_t> StepsToRemove(const std::vector<SnapshotListing>& listing, const RetentionOptions& options) {
  std::vector<SnapshotListing> committed;
  std::copy_if(listing.begin(), listing.end(), std::back_inserter(committed),
               [](const SnapshotListing& l) { return l.committed; });
  if (committed.empty() || options.max_to_keep <= 0) return {};
  std::sort(committed.begin(), committed.end(),
            [](const SnapshotListing& a, const SnapshotListing& b) { return a.step < b.step; });
  const size_t older = committed.size() - std::min<size_t>(committed.size(), options.max_to_keep);
  std::vector<bool> keep(older, false);
  if (options.keep_every_n_hours > 0) {
    const double period_seconds = options.keep_every_n_hours * 3600;
    std::map<double, size_t> oldest_of_period;  // period -> index into committed
    for (size_t i = 0; i < older; ++i) {
      const double period = std::floor(committed[i].created / period_seconds);
      if (!std::isfinite(period)) continue;  // no usable time: not protected by any period
      auto [it, inserted] = oldest_of_period.emplace(period, i);
      if (!inserted && committed[i].created < committed[it->second].created) it->second = i;
    }
    for (const auto& [period, i] : oldest_of_period) keep[i] = true;
  }
  std::vector<int64_t> steps;
  for (size_t i = 0; i < older; ++i) {
    if (!keep[i]) steps.push_back(committed[i].step);
  }
  return steps;
}

StatusOr<std::vector<int64_t>> ApplyRetention(const std::string& model_dir, const RetentionOptions& options) {
  ASSIGN_OR_RETURN(const std::vector<SnapshotListing> listing, ListSnapshots(model_dir));
  const std::vector<int64_t> steps = StepsToRemove(listing, options);
  // Manifests first, made durable before any database goes: a crash in
  // between must never leave a committed step whose databases are gone.
  for (int64_t step : steps) RETURN_IF_ERROR(RemovePath(ManifestPath(model_dir, step)));
  if (!steps.empty()) RETURN_IF_ERROR(SyncDir(model_dir));
  if (!steps.empty()) CrashPoint("retention.after_manifests_removed");
  for (int64_t step : steps) {
    RETURN_IF_ERROR(RemovePath(SnapshotDirPath(model_dir, step)));
    spdlog::info("model dir '{}': removed snapshot {} (retention)", model_dir, step);
  }

  int64_t newest_committed = -1;
  for (const SnapshotListing& l : listing) {
    if (l.committed) newest_committed = std::max(newest_committed, l.step);
  }
  // Uncommitted steps newer than the newest commit may be in progress.
  for (const SnapshotListing& l : listing) {
    if (!l.committed && l.step < newest_committed) {
      RETURN_IF_ERROR(RemovePath(SnapshotDirPath(model_dir, l.step)));
      spdlog::info("model dir '{}': removed uncommitted snapshot {} (left by a crash)", model_dir, l.step);
    }
  }
  ASSIGN_OR_RETURN(const ModelDirScan scan, ScanModelDir(model_dir));
  for (const auto& [step, path] : scan.tmp_manifests) {
    if (step > newest_committed) continue;
    RETURN_IF_ERROR(RemovePath(path));
    spdlog::info("model dir '{}': removed stale temporary manifest '{}'", model_dir, path);
  }
  return steps;
}

}  // namespace cairn
