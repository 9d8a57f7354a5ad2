#include "common/snapshot/model_dir.h"

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

#include <spdlog/spdlog.h>

#include "common/file_io.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;

constexpr char kMarkerName[] = "cairn-model-dir";
constexpr char kMarkerText[] = "cairn model directory, format 1\n";
constexpr char kSnapshotPrefix[] = "snapshot-";
constexpr char kManifestSuffix[] = ".manifest";
constexpr char kTmpSuffix[] = ".manifest.tmp-";

// ---- Files ----



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

// ---- Retention ----

}  // namespace

std::string SnapshotDirPath(const std::string& model_dir, int64_t step) {
  return model_dir + "/" + kSnapshotPrefix + StepDigits(step);
}

std::string ServerDbPath(const std::string& model_dir, int64_t step, int server) {
  return SnapshotDirPath(model_dir, step) + "/server-" + std::to_string(server) + ".db";
}

std::string ManifestPath(const std::string& model_dir, int64_t step) {
  return SnapshotDirPath(model_dir, step) + kManifestSuffix;
}

Status PrepareModelDir(const std::string& model_dir, const StorageEnv& env) {
  std::error_code ec;
  if (fs::exists(model_dir, ec) && !fs::is_directory(model_dir, ec)) {
    return FailedPrecondition("model directory '" + model_dir + "' is not a directory");
  }
  RETURN_IF_ERROR(env.file_system().CreateDirs(model_dir).WithContext("model directory"));
  const std::string marker = model_dir + "/" + kMarkerName;
  // Listed before the marker is looked for: another process of the job
  // preparing the same new directory may write its marker at any moment,
  // and a marker that appears after the look but before the listing would
  // make the directory look like someone else's.
  const bool empty = fs::is_empty(model_dir, ec);
  if (ec) return ErrnoStatus(ec.value(), "cannot list model directory '" + model_dir + "'");
  if (fs::exists(marker, ec)) return Status::OK();
  if (!empty) {
    return FailedPrecondition("'" + model_dir + "' is not a Cairn model directory (it has files but no " +
                              kMarkerName + " marker)");
  }
  // Written in place, not renamed: a second process preparing the same
  // directory must never see a temporary file and take the directory for
  // someone else's.
  RETURN_IF_ERROR(WriteFileSynced(env.file_system(), marker, kMarkerText));
  return env.file_system().SyncDir(model_dir);
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

Status CommitManifest(const std::string& model_dir, const SnapshotManifest& manifest, const StorageEnv& env) {
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
  FileSystem& files = env.file_system();
  Status s = WriteFileSynced(files, tmp, content);
  env.Reach("manifest.before_rename");
  if (s.ok()) s = files.Rename(tmp, path);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s.WithContext("commit of step " + std::to_string(manifest.step) + " (not committed)");
  }
  // The rename is the commit; only a synced directory makes it durable. If
  // the sync fails the manifest is taken back: a commit reported failed must
  // not surface after a crash (or be restored by this run).
  s = files.SyncDir(model_dir);
  if (!s.ok()) {
    ::unlink(path.c_str());
    return s.WithContext("commit of step " + std::to_string(manifest.step) + " (not committed)");
  }
  return Status::OK();
}

StatusOr<SnapshotManifest> ReadManifest(const std::string& model_dir, int64_t step) {
  const std::string path = ManifestPath(model_dir, step);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    RETURN_IF_ERROR(CheckModelDir(model_dir));
    return NotFound("step " + std::to_string(step) + " was never committed in '" + model_dir + "'");
  }
  ASSIGN_OR_RETURN(const std::string content, ReadFile(path));
  ASSIGN_OR_RETURN(SnapshotManifest manifest, DecodeManifestFile(content, path));
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

StatusOr<std::vector<int64_t>> ApplyRetention(const std::string& model_dir, const RetentionOptions& options,
                                              const StorageEnv& env) {
  FileSystem& files = env.file_system();
  ASSIGN_OR_RETURN(const std::vector<SnapshotListing> listing, ListSnapshots(model_dir));
  const std::vector<int64_t> steps = StepsToRemove(listing, options);
  // Manifests first, made durable before any database goes: a crash in
  // between must never leave a committed step whose databases are gone.
  for (int64_t step : steps) RETURN_IF_ERROR(files.RemoveAll(ManifestPath(model_dir, step)));
  if (!steps.empty()) RETURN_IF_ERROR(files.SyncDir(model_dir));
  if (!steps.empty()) env.Reach("retention.after_manifests_removed");
  for (int64_t step : steps) {
    RETURN_IF_ERROR(files.RemoveAll(SnapshotDirPath(model_dir, step)));
    spdlog::info("model dir '{}': removed snapshot {} (retention)", model_dir, step);
  }

  int64_t newest_committed = -1;
  for (const SnapshotListing& l : listing) {
    if (l.committed) newest_committed = std::max(newest_committed, l.step);
  }
  // Uncommitted steps newer than the newest commit may be in progress.
  for (const SnapshotListing& l : listing) {
    if (!l.committed && l.step < newest_committed) {
      RETURN_IF_ERROR(files.RemoveAll(SnapshotDirPath(model_dir, l.step)));
      spdlog::info("model dir '{}': removed uncommitted snapshot {} (left by a crash)", model_dir, l.step);
    }
  }
  ASSIGN_OR_RETURN(const ModelDirScan scan, ScanModelDir(model_dir));
  for (const auto& [step, path] : scan.tmp_manifests) {
    if (step > newest_committed) continue;
    RETURN_IF_ERROR(files.RemoveAll(path));
    spdlog::info("model dir '{}': removed stale temporary manifest '{}'", model_dir, path);
  }
  return steps;
}

Status CheckOwnModelDir(const std::string& own, const std::string& requested, int server_index) {
  const std::string me = "server " + std::to_string(server_index);
  if (own.empty()) {
    return PermissionDenied(me + " has no model directory of its own (start it with --model-dir, or give the job "
                                 "snapshot.model_dir): it writes and restores no snapshots, asked for '" +
                            requested + "'");
  }
  auto resolve = [](const std::string& p, std::error_code& ec) {
    std::filesystem::path r = std::filesystem::weakly_canonical(std::filesystem::absolute(p), ec).lexically_normal();
    return r.has_filename() ? r : r.parent_path();  // "dir/" is "dir"
  };
  std::error_code e1, e2;
  const std::filesystem::path a = resolve(own, e1);
  const std::filesystem::path b = resolve(requested, e2);
  // `b` must be `a` or lie beneath it, compared component by component.
  bool inside = !e1 && !e2;
  auto ai = a.begin(), bi = b.begin();
  for (; inside && ai != a.end(); ++ai, ++bi) inside = bi != b.end() && *ai == *bi;
  if (!inside) {
    return PermissionDenied(me + " writes and restores snapshots only in its own model directory '" + own +
                            "', not in '" + requested + "'");
  }
  return Status::OK();
}

}  // namespace cairn
