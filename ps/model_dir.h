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
// The manifest is JSON followed by a line "xxh3 <16 hex digits>" over the
// JSON bytes, so a truncated or edited manifest is DataLoss, never a
// silently different model.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/status.h"
#include "common/variable_spec.h"

namespace cairn {

// One variable of a snapshot.
struct ManifestVariable {
  VariableSpec spec;
  std::string optimizer;            // trainable: the optimizer's name ("Adam"); "" otherwise
  std::vector<std::string> slots;   // slot names, in part order ("m", "v", ...)
  std::vector<bool> scalar_slots;   // per slot: one value per shard instead of one per element
};

// Rows [row_begin, row_end) of `variable` are in server `server`'s database.
struct ManifestShard {
  std::string variable;
  int64_t row_begin = 0;
  int64_t row_end = 0;
  int server = 0;
};

// Where one worker's training stood at the snapshot.
struct WorkerState {
  int worker = 0;
  int64_t steps = 0;           // train steps this worker had run
  int64_t epoch = 0;           // data position: completed epochs
  int64_t step_in_epoch = 0;   //                batches into the current epoch
  uint64_t seed = 0;           // shuffling seed; with (epoch, worker) it fixes the RNG state
};

struct SnapshotManifest {
  int64_t step = 0;            // the snapshot's step (its name)
  int64_t global_step = 0;     // global_step's value in the snapshot (equal to step in sync mode)
  double created = 0;          // Unix seconds when committed
  int num_servers = 0;
  TrainingMode mode;
  OptimizerSpec optimizer;
  std::vector<ManifestVariable> variables;  // sorted by name
  std::vector<ManifestShard> shards;
  std::map<std::string, std::vector<std::string>> collections;  // collection -> variable names
  std::vector<WorkerState> workers;                              // by worker index
  std::string job_config;      // the job file's text (may be empty)
  uint64_t bytes = 0;          // value and slot bytes across all databases

  const ManifestVariable* FindVariable(const std::string& name) const;
};

// Paths.
std::string SnapshotDirPath(const std::string& model_dir, int64_t step);
std::string ServerDbPath(const std::string& model_dir, int64_t step, int server);
std::string ManifestPath(const std::string& model_dir, int64_t step);

// For writing: creates `model_dir` (and parents) if missing and its marker
// if the directory is empty. FailedPrecondition if the directory holds
// files but no marker (someone else's directory: Cairn will not write into
// it).
Status PrepareModelDir(const std::string& model_dir);
// For reading: NotFound if `model_dir` does not exist, FailedPrecondition if
// it has no marker (not a Cairn model directory).
Status CheckModelDir(const std::string& model_dir);

// Commits `manifest` atomically (see above). AlreadyExists if that step is
// committed already.
Status CommitManifest(const std::string& model_dir, const SnapshotManifest& manifest);
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
StatusOr<std::vector<int64_t>> ApplyRetention(const std::string& model_dir, const RetentionOptions& options);

}  // namespace cairn
