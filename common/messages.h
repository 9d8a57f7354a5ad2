// Control messages carried in a frame's control section (Cereal binary).
//
// Every reply's control section starts with a WireStatus. Tensor values never
// travel inside a message: a TensorDesc names a byte range of the frame's data
// section instead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/optimizer_spec.h"
#include "common/sparse_spec.h"
#include "common/status.h"
#include "common/tensor.h"
#include "common/variable_spec.h"
#include "common/wire_archive.h"

namespace cairn {

struct WireStatus {
  int32_t code = 0;
  std::string message;

  static WireStatus From(const Status& s) { return {static_cast<int32_t>(s.code()), s.message()}; }
  Status ToStatus() const;
  template <class A> void save(A& ar) const { ar(code, message); }
  template <class A> void load(A& ar) { ar(code); LoadString(ar, message, wire::kMaxMessageText, "status text"); }
};

// What a pushed tensor does to its variable.
enum class UpdateKind : uint8_t {
  kGradient = 0,   // apply with the variable's optimizer
  kAssign = 1,     // set the value
  kAssignAdd = 2,  // add to the value
};
const char* UpdateKindName(UpdateKind kind);

// A tensor's place in the data section: bytes [offset, offset + bytes).
struct TensorDesc {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  int64_t row_begin = 0;  // first row of the variable this tensor holds
  uint64_t offset = 0;
  uint64_t bytes = 0;
  UpdateKind update = UpdateKind::kGradient;  // pushes only

  template <class A> void save(A& ar) const { ar(name, dtype, shape, row_begin, offset, bytes, update); }
  template <class A> void load(A& ar) {
    LoadString(ar, name, wire::kMaxName, "tensor name");
    ar(dtype);
    LoadVector(ar, shape, wire::kMaxRank, "tensor rank");
    ar(row_begin, offset, bytes, update);
  }
};

// Checks a desc against the data section: dtype known, shape bounded, bytes
// matching the shape, range inside [0, data_len), offset aligned for dtype.
Status ValidateTensorDesc(const TensorDesc& desc, uint64_t data_len);
// A tensor viewing the desc's bytes of a received frame (no copy).
Tensor ViewTensor(const TensorDesc& desc, const std::shared_ptr<uint8_t>& payload, uint8_t* data);

struct HelloRequest {
  int32_t worker_id = -1;
  // The worker's view of the cluster (its cluster file's servers, in order,
  // and worker count, as text; empty: not checked). A server that has a view
  // of its own (ServerOptions::cluster) refuses a different one, naming both.
  std::string cluster;
  template <class A> void save(A& ar) const { ar(worker_id, cluster); }
  template <class A> void load(A& ar) {
    ar(worker_id);
    LoadString(ar, cluster, wire::kMaxMessageText, "cluster view");
  }
};
// Who the server is and where its state came from: a client that sees the
// incarnation change knows the server process was restarted (and restored
// itself from a snapshot, or came up empty); in sync mode, workers waiting
// for a cluster-wide rollback wait until every server reports the same
// restore_id with nothing staged.
struct HelloReply {
  WireStatus status;
  int32_t server_index = 0;
  uint64_t incarnation = 0;     // random, fixed for the server process's life
  uint64_t restore_id = 0;      // of the last restore applied (0: none)
  int64_t restored_step = -1;   // that restore's snapshot step (-1: none)
  int64_t sync_step = -1;       // sync mode: the step the next round applies (-1: not sync)
  bool restore_staged = false;  // a restore is staged and not yet applied or discarded
  uint64_t variables = 0;       // shards held
  template <class A> void save(A& ar) const {
    ar(status, server_index, incarnation, restore_id, restored_step, sync_step, restore_staged, variables);
  }
  template <class A> void load(A& ar) {
    ar(status, server_index, incarnation, restore_id, restored_step, sync_step);
    LoadBool(ar, restore_staged, "restore_staged");  // any other byte than 0 or 1 is refused, not copied
    ar(variables);
  }
};

// Rows [row_begin, row_end) of a variable that the receiving server holds,
// and the optimizer that applies its gradients (ignored if not trainable).
struct ShardDecl {
  VariableSpec spec;
  int64_t row_begin = 0;
  int64_t row_end = 0;
  OptimizerSpec optimizer;
  template <class A> void serialize(A& ar) { ar(spec, row_begin, row_end, optimizer); }
};

// A sparse table every server holds its part of (the ids ServerOfId routes
// to it), with the optimizer of its rows.
struct SparseTableDecl {
  SparseTableSpec spec;
  OptimizerSpec optimizer;
  template <class A> void serialize(A& ar) { ar(spec, optimizer); }
  bool operator==(const SparseTableDecl&) const = default;
};

// One sparse table's part of a request or reply: `count` ids (int64) at
// ids_offset of the data section and, where values travel (a push's
// gradients, a pull's reply), count x dim float32 at values_offset. Rows
// travel as raw floats, no per-row framing.
struct SparseDesc {
  std::string table;
  uint64_t count = 0;
  int32_t dim = 0;
  uint64_t ids_offset = 0;
  uint64_t values_offset = 0;
  template <class A> void save(A& ar) const { ar(table, count, dim, ids_offset, values_offset); }
  template <class A> void load(A& ar) {
    LoadString(ar, table, wire::kMaxName, "sparse table name");
    ar(count, dim, ids_offset, values_offset);
  }
};

// Checks a desc against the data section and the limits: count and dim
// bounded, ids (and, `with_values`, the values) inside [0, data_len) and
// aligned. Errors name the table.
Status ValidateSparseDesc(const SparseDesc& desc, uint64_t data_len, bool with_values, const SparseLimits& limits = {});

// How a job's servers combine the workers' gradients.
enum class Consistency : uint8_t {
  kAsync = 0,  // apply each push on arrival
  kSync = 1,   // one aggregated step per round
  kSsp = 2,    // stale synchronous parallel: each push applied on arrival, pulls bounded by the slowest worker's clock
};
// Sync mode: what a step does when a worker misses its deadline.
enum class MissingWorkers : uint8_t {
  kFail = 0,      // the step fails, naming the missing workers
  kContinue = 1,  // the step applies the workers that arrived; the missing ones are left out of later steps
};
const char* ConsistencyName(Consistency c);         // "async", "sync", "ssp"
const char* MissingWorkersName(MissingWorkers m);   // "fail", "continue"
// InvalidArgument naming the choices for anything else.
StatusOr<Consistency> ParseConsistency(const std::string& name);
StatusOr<MissingWorkers> ParseMissingWorkers(const std::string& name);

// Fixed by the first CreateVariables a server receives; a different mode
// later is an error.
struct TrainingMode {
  Consistency consistency = Consistency::kAsync;
  int32_t num_workers = 1;            // sync: pushes per step
  int64_t sync_timeout_ms = 60000;    // sync: how long a step waits for its last worker
  MissingWorkers missing_workers = MissingWorkers::kFail;
  // ssp: a worker at clock c pulls once the slowest has reached c - staleness
  // (sync_timeout_ms bounds how long a pull waits for it).
  int32_t staleness = 0;
  bool sync() const { return consistency == Consistency::kSync; }
  bool ssp() const { return consistency == Consistency::kSsp; }
  template <class A> void save(A& ar) const {
    ar(static_cast<uint8_t>(consistency), num_workers, sync_timeout_ms, static_cast<uint8_t>(missing_workers),
       staleness);
  }
  template <class A> void load(A& ar) {
    uint8_t c = 0, m = 0;
    ar(c, num_workers, sync_timeout_ms, m, staleness);
    if (c > 2) throw WireFormatError("consistency " + std::to_string(c) + " is not async, sync or ssp");
    if (m > 1) throw WireFormatError("missing_workers " + std::to_string(m) + " is not fail or continue");
    consistency = static_cast<Consistency>(c);
    missing_workers = static_cast<MissingWorkers>(m);
  }
  bool operator==(const TrainingMode&) const = default;
};

struct CreateRequest {
  TrainingMode mode;
  std::vector<ShardDecl> shards;
  std::vector<SparseTableDecl> sparse_tables;
  template <class A> void save(A& ar) const { ar(mode, shards, sparse_tables); }
  template <class A> void load(A& ar) {
    ar(mode);
    LoadVector(ar, shards, wire::kMaxEntries, "shard");
    LoadVector(ar, sparse_tables, wire::kMaxEntries, "sparse table");
  }
};

struct StatusReply {
  WireStatus status;
  template <class A> void serialize(A& ar) { ar(status); }
};

// ssp mode: a pull with clock >= 0 is a worker's read at that clock (the
// training steps it has pushed), served once every worker has reached
// clock - staleness; -1: not bounded.
struct PullRequest {
  std::vector<std::string> names;
  int32_t worker_id = -1;
  int64_t clock = -1;
  template <class A> void save(A& ar) const { ar(names, worker_id, clock); }
  template <class A> void load(A& ar) {
    LoadStrings(ar, names, wire::kMaxEntries, "pull name");
    ar(worker_id, clock);
  }
};

struct PullReply {
  WireStatus status;
  std::vector<TensorDesc> tensors;
  template <class A> void save(A& ar) const { ar(status, tensors); }
  template <class A> void load(A& ar) { ar(status); LoadVector(ar, tensors, wire::kMaxEntries, "pulled tensor"); }
};

// (worker_id, incarnation, sequence) names a push: a retried push repeats
// it, and the server applies it once (ps/push_log.h). incarnation 0 opts out.
struct PushRequest {
  int32_t worker_id = -1;
  uint64_t incarnation = 0;   // random per client process
  uint64_t sequence = 0;      // per client; a retried push repeats its sequence
  bool train_step = false;    // a Minimize step: counted in global_step; in sync mode, waits for every worker
  int64_t step = 0;           // sync: the step this push belongs to; ssp: the worker's clock before it
  // ssp: the worker has finished training (its clock no longer holds anyone back).
  bool leaving = false;
  float learning_rate = -1;   // >= 0: use instead of the optimizer's configured rate
  std::string global_step;    // an int64 variable to count this step in ("" for none)
  std::vector<TensorDesc> grads;  // gradients, assigns and assign-adds
  // Sparse gradients: one row per id, ids unique within a table (a worker
  // sums repeated ids first). Applied with the dense ones, as one update.
  std::vector<SparseDesc> sparse;
  template <class A> void save(A& ar) const {
    ar(worker_id, incarnation, sequence, train_step, step, leaving, learning_rate, global_step, grads, sparse);
  }
  template <class A> void load(A& ar) {
    ar(worker_id, incarnation, sequence);
    LoadBool(ar, train_step, "train_step");
    ar(step);
    LoadBool(ar, leaving, "leaving");
    ar(learning_rate);
    LoadString(ar, global_step, wire::kMaxName, "global_step");
    LoadVector(ar, grads, wire::kMaxEntries, "gradient");
    LoadVector(ar, sparse, wire::kMaxEntries, "sparse gradient");
  }
};

// Rows of sparse tables by id (ids at each desc's ids_offset; values_offset
// unused). The reply's descs give where each table's count x dim floats lie
// in its data section, in the request's order.
struct SparsePullRequest {
  std::vector<SparseDesc> tables;
  int32_t worker_id = -1;  // ssp: as PullRequest's
  int64_t clock = -1;
  template <class A> void save(A& ar) const { ar(tables, worker_id, clock); }
  template <class A> void load(A& ar) {
    LoadVector(ar, tables, wire::kMaxEntries, "sparse pull table");
    ar(worker_id, clock);
  }
};

struct SparsePullReply {
  WireStatus status;
  std::vector<SparseDesc> tables;
  template <class A> void save(A& ar) const { ar(status, tables); }
  template <class A> void load(A& ar) { ar(status); LoadVector(ar, tables, wire::kMaxEntries, "sparse pulled table"); }
};

struct StatsReply {
  WireStatus status;
  uint64_t pushes_applied = 0;
  uint64_t pulls_served = 0;
  uint64_t frames_rejected = 0;
  uint64_t variables = 0;
  template <class A> void serialize(A& ar) { ar(status, pushes_applied, pulls_served, frames_rejected, variables); }
};

// Snapshots (see ps/snapshot_store.h and ps/model_dir.h). The chief sends
// Prepare to every server; each copies the named shards (under their locks,
// with pushes held off so the copy is one consistent cut) and answers, then
// writes them to <model_dir>/snapshot-<step>/server-<index>.db in the
// background. Wait answers once that database is synced. A server writes one
// snapshot at a time.
struct SnapshotPrepareRequest {
  int64_t step = 0;
  std::string model_dir;
  std::vector<std::string> names;  // the variables to save; every one this server holds must exist
  // Small int64 variables (global_step, the workers' positions) whose rows
  // the reply carries as copied: the chief writes them into the manifest,
  // so it agrees with the weights, without reading any server's database.
  std::vector<std::string> report;
  template <class A> void save(A& ar) const { ar(step, model_dir, names, report); }
  template <class A> void load(A& ar) {
    ar(step);
    LoadString(ar, model_dir, wire::kMaxMessageText, "model directory");
    LoadStrings(ar, names, wire::kMaxEntries, "snapshot variable");
    LoadStrings(ar, report, wire::kMaxEntries, "reported variable");
  }
};

// Rows [row_begin, row_begin + values.size() / row_elements) of a reported
// int64 variable, as one server copied them.
struct ReportedRows {
  std::string name;
  int64_t row_begin = 0;
  std::vector<int64_t> values;
  static constexpr size_t kMaxValues = 64;  // reported variables are counters and positions
  template <class A> void save(A& ar) const { ar(name, row_begin, values); }
  template <class A> void load(A& ar) {
    LoadString(ar, name, wire::kMaxName, "reported variable");
    ar(row_begin);
    LoadVector(ar, values, kMaxValues, "reported value");
  }
};

// How many rows of a sparse table one server copied into a snapshot.
struct SparseRowCount {
  std::string table;
  int server = 0;
  int64_t rows = 0;
  template <class A> void save(A& ar) const { ar(table, server, rows); }
  template <class A> void load(A& ar) {
    LoadString(ar, table, wire::kMaxName, "sparse table name");
    ar(server, rows);
  }
};

// `names` may also name sparse tables: a server copies its part of each
// sparse table among them (of every sparse table it holds if `names` is
// empty) in the same cut as the dense shards, and reports its row counts.
struct SnapshotPrepareReply {
  WireStatus status;
  uint64_t shards = 0;        // shards copied (those of `names` this server holds)
  uint64_t bytes = 0;         // value and slot bytes copied (sparse ids, values and slots too)
  double copy_seconds = 0;    // how long pushes were held off
  std::vector<ReportedRows> reported;  // of the request's `report` this server holds
  std::vector<SparseRowCount> sparse;  // per sparse table copied
  template <class A> void save(A& ar) const { ar(status, shards, bytes, copy_seconds, reported, sparse); }
  template <class A> void load(A& ar) {
    ar(status, shards, bytes, copy_seconds);
    LoadVector(ar, reported, wire::kMaxEntries, "reported rows");
    LoadVector(ar, sparse, wire::kMaxEntries, "sparse row counts");
  }
};

struct SnapshotWaitRequest {
  int64_t step = 0;
  template <class A> void serialize(A& ar) { ar(step); }
};

struct SnapshotWaitReply {
  WireStatus status;          // the write's outcome
  uint64_t bytes = 0;
  double write_seconds = 0;
  template <class A> void serialize(A& ar) { ar(status, bytes, write_seconds); }
};

// Loads the shards this server holds from a committed snapshot, in two
// phases so that a restore changes every server or none: kStage reads and
// verifies the rows each shard owns (from whichever old databases hold
// them, so the snapshot may come from a different number of servers) into
// a held copy; kApply then replaces the shards with it, or kDiscard drops
// it. Only model_dir and step matter to kApply and kDiscard.
enum class RestorePhase : uint8_t { kStage = 0, kApply = 1, kDiscard = 2 };

struct SnapshotRestoreRequest {
  RestorePhase phase = RestorePhase::kStage;
  std::string model_dir;
  int64_t step = 0;
  // variables[i] takes the value saved as saved_names[i] (a name map for
  // warm starts); a variable of this server that is not listed keeps its value.
  std::vector<std::string> variables;
  std::vector<std::string> saved_names;
  bool slots = true;          // restore optimizer slots too (they must match)
  int64_t sync_step = -1;     // >= 0: the sync step the next round applies
  uint64_t restore_id = 0;    // names this restore cluster-wide (HelloReply::restore_id)
  // The restoring cluster's server count: a sparse table's rows are
  // re-routed by ServerOfId(id, num_servers). 0: the server's own option.
  int32_t num_servers = 0;
  template <class A> void save(A& ar) const {
    ar(static_cast<uint8_t>(phase), model_dir, step, variables, saved_names, slots, sync_step, restore_id,
       num_servers);
  }
  template <class A> void load(A& ar) {
    uint8_t p = 0;
    ar(p);
    if (p > 2) throw WireFormatError("restore phase " + std::to_string(p) + " is not stage, apply or discard");
    phase = static_cast<RestorePhase>(p);
    LoadString(ar, model_dir, wire::kMaxMessageText, "model directory");
    ar(step);
    LoadStrings(ar, variables, wire::kMaxEntries, "restore variable");
    LoadStrings(ar, saved_names, wire::kMaxEntries, "saved variable");
    LoadBool(ar, slots, "slots");
    ar(sync_step, restore_id, num_servers);
  }
};

struct SnapshotRestoreReply {
  WireStatus status;
  uint64_t shards = 0;        // shards restored on this server
  uint64_t bytes = 0;
  double seconds = 0;
  template <class A> void serialize(A& ar) { ar(status, shards, bytes, seconds); }
};

}  // namespace cairn
