// Model directory: where a job's snapshots live, and what makes one committed.
//
// Layout (the directory may sit on a file system shared by every node):
//   <dir>/cairn-model-dir                     marker: this is a Cairn model directory
//   <dir>/snapshot-<step:012>/server-<i>.db   server i's RocksDB for that step (snapshot_store.h)
//   <dir>/snapshot-<step:012>.manifest        the commit record
//
// A snapshot is committed exactly when its manifest exists: the chief writes
// it (to a temporary file, fsync, rename, fsync of the directory) only
// after every server has synced its database. A crash at any instant leaves
// either no manifest (the step was never committed and its directory is
// garbage, removed by the next retention pass) or a whole one.
//
// Every function that writes (Prepare, Commit, ApplyRetention) does its
// file work through `env` (file_system.h), so tests can make it fail.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/snapshot/file_system.h"
#include "common/snapshot/manifest.h"
#include "common/status.h"

namespace cairn {

// Paths.
std::string SnapshotDirPath(const std::string& model_dir, int64_t step);
std::string ServerDbPath(const std::string& model_dir, int64_t step, int server);
std::string ManifestPath(const std::string& model_dir, int64_t step);

// For writing: creates `model_dir` (and parents) if missing and its marker
// if the directory is empty. FailedPrecondition if the directory holds
// files but no marker (someone else's directory: Cairn will not write into
// it).
Status PrepareModelDir(const std::string& model_dir, const StorageEnv& env = {});
// For reading: NotFound if `model_dir` does not exist, FailedPrecondition if
// it has no marker (not a Cairn model directory).
Status CheckModelDir(const std::string& model_dir);

// Commits `manifest` atomically (see above). AlreadyExists if that step is
// committed already.
Status CommitManifest(const std::string& model_dir, const SnapshotManifest& manifest, const StorageEnv& env = {});
// Reads and verifies a committed manifest. NotFound if step `step` was never
// committed; DataLoss naming the file if it is truncated, corrupted or does
// not decode.
StatusOr<SnapshotManifest> ReadManifest(const std::string& model_dir, int64_t step);

struct SnapshotListing {
  int64_t step = 0;
  bool committed = false;   // has a manifest
  double created = 0;       // committed: from the manifest; otherwise the directory's mtime
  uint64_t bytes = 0;       // on disk: the databases' files plus the manifest
};

// Every snapshot in the directory, committed or not, by ascending step.
StatusOr<std::vector<SnapshotListing>> ListSnapshots(const std::string& model_dir);
// The newest committed step; NotFound if there is none.
StatusOr<int64_t> LatestCommittedStep(const std::string& model_dir);

struct RetentionOptions {
  int max_to_keep = 5;            // newest committed snapshots kept; 0 keeps all
  double keep_every_n_hours = 0;  // > 0: also keep the oldest committed snapshot of every
                                  // n-hour period (periods counted from the Unix epoch)
};

// The committed steps that retention removes from `listing`. Pure: never
// the newest committed snapshot, never one of the newest max_to_keep.
std::vector<int64_t> StepsToRemove(const std::vector<SnapshotListing>& listing, const RetentionOptions& options);

// Applies retention: removes the steps StepsToRemove names (manifest first,
// then its directory), and every uncommitted snapshot directory older than
// the newest committed step (left by a crash). Returns the steps removed.
StatusOr<std::vector<int64_t>> ApplyRetention(const std::string& model_dir, const RetentionOptions& options,
                                              const StorageEnv& env = {});

// A server writes snapshots under, and restores from, its own model
// directory only: OK if `requested` names `own` or a directory beneath it
// (after resolving ".", ".." and symbolic links); PermissionDenied, naming
// both, otherwise, and when the server has none (`own` empty).
Status CheckOwnModelDir(const std::string& own, const std::string& requested, int server_index);

}  // namespace cairn
