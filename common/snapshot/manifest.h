// SnapshotManifest: the commit record of one cluster-wide snapshot, and its
// file format.
//
// The manifest says what the snapshot holds (variables with their specs and
// optimizer slots, which server's database holds which rows), how the job
// stood (global step, training mode, each worker's data position, the
// session's collections, the job file), and is the commit itself: see
// model_dir.h.
//
// The file is JSON followed by a line "xxh3 <16 hex digits>" over the JSON
// bytes, so a truncated or edited manifest is DataLoss, never a silently
// different model.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
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

// One sparse table of a snapshot: server s's database holds
// rows_per_server[s] of its rows (the ids ServerOfId routed to s among the
// snapshot's num_servers), as the servers reported them when they copied.
struct ManifestSparseTable {
  SparseTableSpec spec;
  std::string optimizer;            // trainable: the optimizer's name; "" otherwise
  std::vector<std::string> slots;   // slot names, in part order
  std::vector<bool> scalar_slots;   // per slot: one value per row instead of dim
  std::vector<int64_t> rows_per_server;

  int64_t rows() const;
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
  // Sorted by name. A manifest written before sparse tables has none.
  std::vector<ManifestSparseTable> sparse_tables;
  std::map<std::string, std::vector<std::string>> collections;  // collection -> variable names
  std::vector<WorkerState> workers;                              // by worker index
  std::string job_config;      // the job file's text (may be empty)
  uint64_t bytes = 0;          // value and slot bytes across all databases

  const ManifestVariable* FindVariable(const std::string& name) const;
  const ManifestSparseTable* FindSparseTable(const std::string& name) const;
};

// The manifest file's bytes. InvalidArgument if it cannot be encoded (a
// string that is not UTF-8).
StatusOr<std::string> EncodeManifestFile(const SnapshotManifest& manifest);
// Parses and verifies a manifest file's bytes; DataLoss naming `path` if
// they are truncated, corrupted or do not decode.
StatusOr<SnapshotManifest> DecodeManifestFile(std::string_view content, const std::string& path);

}  // namespace cairn
