// Saver: cluster-wide snapshots of a session's global variables, and
// restores from them.
//
// A snapshot is one step across every server (see common/snapshot/model_dir.h
// for the layout and the commit rule). The Saver talks to servers only over
// the wire; it never opens a server's database:
//   Begin(step)  every server copies its shards of the saved variables as
//                one consistent cut, then writes them in the background.
//                Training stalls only for this copy.
//                Their replies carry global_step and the workers'
//                positions as copied, for the manifest.
//   Finish()     waits until every server has synced its database, commits the manifest
//                (variables, placement, collections, worker states, job
//                config), and applies retention.
// Save(step) does both. Only the chief (one Saver per job) saves.
//
// What is saved: by default every global variable, trainable or not
// (normalization statistics, learning_rate, global_step, the workers'
// states), each with its optimizer slots; never "cairn/chief_ready".
// Sparse tables (Graph::SparseTables) are saved with the variables, in the
// same cut: each server its rows with their slots; the manifest records
// each table's spec, optimizer slots and rows per server from the prepare
// replies. A restore re-routes every row to the server ServerOfId names in
// the restoring cluster.
// options.var_list narrows it (it may name sparse tables), and the Saver logs which non-trainable
// variables, slots and counters a narrowed save leaves out.
//
// Restore validates the snapshot against the graph and reports every
// mismatch at once (missing, unexpected, shape A vs B, different optimizer
// slots). A partial restore (warm start) names what it takes, optionally
// under other names; everything else keeps its initial value. The snapshot
// may come from a different number of servers.
//
// Not thread-safe: Begin and Finish may run on different threads, but not
// at the same time, and one snapshot at a time.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/snapshot/model_dir.h"
#include "worker/ps_client.h"
#include "worker/session.h"

namespace cairn {

struct SaverOptions {
  std::string model_dir;
  std::vector<std::string> var_list;  // empty: every global variable
  RetentionOptions retention;         // max_to_keep 5 by default
  std::string job_config;             // stored in each manifest (the job file's text)
  StorageEnv env;                     // manifest commits and retention go through it; crash points
};

struct SnapshotStats {
  int64_t step = 0;
  uint64_t bytes = 0;          // value and slot bytes, all servers
  double copy_seconds = 0;     // the stall: the slowest server's copy
  double write_seconds = 0;    // the slowest server's background write
  double total_seconds = 0;    // Begin to committed manifest
};

struct RestoreOptions {
  int64_t step = -1;           // -1: the newest committed snapshot
  // Partial restore (warm start): only these variables, each taken from the
  // snapshot's variable of the mapped name (current -> saved; unmapped names
  // map to themselves). Every listed variable must be in the snapshot.
  bool partial = false;
  std::vector<std::string> var_list;
  std::map<std::string, std::string> name_map;
  bool slots = true;           // restore optimizer slots (a warm start may start them afresh)
  bool rebuild_collections = false;  // replace the session's collections with the snapshot's
};

struct RestoreResult {
  int64_t step = 0;
  int64_t global_step = 0;
  std::vector<WorkerState> workers;
  std::vector<std::string> restored;   // current variable names
  uint64_t bytes = 0;
  double seconds = 0;
};

class Saver {
 public:
  // `session` and `client` are borrowed and must outlive the Saver; the
  // session must be initialized. Checks that var_list names global
  // variables.
  static StatusOr<std::unique_ptr<Saver>> Create(Session* session, PsClient* client, SaverOptions options);

  Status Begin(int64_t step);
  StatusOr<SnapshotStats> Finish();
  StatusOr<SnapshotStats> Save(int64_t step);
  bool pending() const { return pending_.has_value(); }

  StatusOr<RestoreResult> Restore(const RestoreOptions& options = {});

  // The variables a save includes.
  const std::vector<std::string>& saved_variables() const { return saved_; }
  // The sparse tables a save includes, sorted.
  const std::vector<std::string>& saved_sparse_tables() const { return saved_sparse_; }
  const SaverOptions& options() const { return options_; }

 private:
  Saver(Session* session, PsClient* client, SaverOptions options);
  Status Init();
  static StatusOr<std::vector<WorkerState>> WorkerStates(const std::vector<ReportedRows>& reported,
                                                         int64_t* global_step);
  Status Validate(const SnapshotManifest& m, const RestoreOptions& o,
                  std::vector<std::pair<std::string, std::string>>* pairs) const;
  // Validate's part for sparse tables: appends (current, saved) pairs and problems.
  Status ValidateSparse(const SnapshotManifest& m, const RestoreOptions& o, const std::vector<std::string>& wanted,
                        std::vector<std::pair<std::string, std::string>>* pairs,
                        std::vector<std::string>* problems) const;
  StatusOr<std::vector<ManifestSparseTable>> SparseTablesOf(const std::vector<SparseRowCount>& counts,
                                                            int num_servers) const;

  struct Pending {
    int64_t step = 0;
    std::chrono::steady_clock::time_point start;
    SnapshotStats stats;
    std::vector<ReportedRows> reported;  // global_step and worker states, as copied
    std::vector<SparseRowCount> sparse;  // rows of each sparse table per server, as copied
  };

  Session* const session_;
  PsClient* const client_;
  const SaverOptions options_;
  std::vector<std::string> saved_;        // sorted
  std::vector<VariableSpec> specs_;       // of every global variable, sorted by name
  std::vector<SparseTableSpec> sparse_specs_;  // of every sparse table, sorted by name
  std::vector<std::string> saved_sparse_;      // sorted
  std::optional<Pending> pending_;
};

}  // namespace cairn
