// JobConfig: a training job as written in its YAML file, after validation.
//
// Every field has a default; an unknown key, a wrong type or an out-of-range
// value is an InvalidArgument naming the field ("train.batch_size: ...").
// Command-line flags override fields after parsing (see cairn_main.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/crash_point.h"
#include "common/secret.h"
#include "common/status.h"
#include "worker/model.h"
#include "worker/trainer.h"

namespace cairn {

struct DataConfig {
  // synthetic_linear | fashion_mnist | synthetic_clicks | criteo_tsv
  std::string kind = "synthetic_linear";
  // synthetic_linear
  int64_t examples = 100000;
  int64_t features = 1000;
  double noise_stddev = 0.01;
  uint64_t seed = 7;  // synthetic_linear, synthetic_clicks
  // fashion_mnist
  std::string dir = "/usr/share/datasets/fashion-mnist";
  // fashion_mnist, criteo_tsv: use only the first N training examples (0: all)
  int64_t train_limit = 0;
  int64_t test_limit = 0;  // likewise for test examples (synthetic_clicks too)
  // synthetic_clicks (worker/synthetic_clicks.h; the defaults are
  // SyntheticClicksOptions')
  int64_t rows = 2000000;       // training examples
  int64_t test_rows = 200000;   // test examples (0: no evaluation)
  std::vector<int64_t> vocab;   // 26 per-slot sizes; empty: Criteo Kaggle's, clipped to [vocab_min, vocab_max]
  int64_t vocab_min = 10;
  int64_t vocab_max = 1000000;
  double zipf_exponent = 1.1;
  double int_missing = 0.20;
  double cat_missing = 0.08;
  double click_rate = 0.25;
  // criteo_tsv (worker/criteo_tsv.h): training files, read in order as one
  // log; test files likewise (none: no evaluation)
  std::vector<std::string> paths;
  std::vector<std::string> test_paths;
  bool skip_malformed = false;
};

struct TrainConfig {
  int64_t batch_size = 100;
  int64_t epochs = 2;
  int64_t max_steps = 0;          // per worker; 0: no cap
  int64_t log_every_steps = 200;  // progress line period (every worker)
  uint64_t seed = 1;
  // Async mode: overlap communication with compute (SessionOptions::overlap):
  // a step's pull is sent during the previous step's backward pass, and its
  // push is waited for at the next step. Ignored in sync and ssp mode.
  bool overlap = true;
  // With overlap: gradients leave during backward in pushes of at least
  // this many bytes (SessionOptions::push_bucket_bytes; 0: each variable on
  // its own, -1: one push per step).
  int64_t push_bucket_bytes = int64_t{1} << 20;
  // Benchmarks (cairn train --straggler W:F): worker `straggler` sleeps
  // (factor - 1) x its own step time after each step, so it runs `factor`
  // times slower. -1: none.
  int straggler = -1;
  double straggler_factor = 1.0;
};

struct ClusterConfig {
  int servers = 1;
  int workers = 2;
  Consistency consistency = Consistency::kAsync;  // async | sync | ssp
  // ssp: a worker that has pushed c steps reads once every worker has pushed c - staleness.
  int staleness = 3;
  // sync: how long a step waits for its slowest worker (< timeout_ms); ssp:
  // how long a read waits for it (at most timeout_ms / 2, so that the
  // server's answer naming the slowest worker comes before the call's
  // deadline).
  int64_t sync_timeout_ms = 60000;
  MissingWorkers missing_workers = MissingWorkers::kFail;  // sync, a worker past sync_timeout_ms: fail | continue
  int max_recoveries = 10;          // sync: rollbacks to a snapshot a worker makes before it gives up
  std::string bind = "127.0.0.1";   // address servers listen on
  // Address workers dial (launch/advertise.h): "" (bind, or the host name
  // for 0.0.0.0), a host, "iface:NAME", or one entry per server "A,B".
  std::string advertise;
  uint64_t split_threshold_bytes = uint64_t{2} << 20;
  int64_t timeout_ms = 120000;      // deadline of each push/pull (in sync mode, > sync_timeout_ms)
  // Threads per process that run network I/O and server handlers. One
  // measured fastest on 2 cores, where more threads only contend with the
  // worker's compute thread; raise it for servers on larger machines.
  int io_threads = 1;
  // Authentication (common/handshake.h), set at the command's edge, not in
  // the job file: the job's secret (made by the launcher, or read from
  // --secret-file), or insecure (--insecure: no secret, anyone may connect).
  std::shared_ptr<const Secret> secret;
  bool insecure = false;
};

// Snapshots (see ps/model_dir.h). Off unless model_dir is set. With a
// model_dir, a job resumes from its newest committed snapshot (unless
// fresh), snapshots every every_steps global steps and/or every_secs
// seconds, and once more at the end.
struct SnapshotConfig {
  std::string model_dir;
  int64_t every_steps = 0;      // 0: not by steps
  double every_secs = 600;      // 0: not by time
  int max_to_keep = 5;          // 0: keep all
  double keep_every_n_hours = 0;
  bool fresh = false;           // start over: remove the directory's snapshots first (--fresh)
  // Not from the job file: armed by the command's edge (CAIRN_CRASH_AT) for
  // the crash-safety tests; null arms nothing.
  std::shared_ptr<const CrashPoints> crash_points;
};

struct JobConfig {
  std::string name = "job";
  std::string text;               // the job file as written (stored in snapshot manifests)
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimizerSpec optimizer;
  LearningRateSchedule schedule;  // optimizer.schedule, decay_rate, decay_steps; base = learning_rate
  ClusterConfig cluster;
  SnapshotConfig snapshot;
  // `cairn train --metrics FILE.jsonl` (launch/metrics_log.h); not a job
  // file field. Workers in separate processes write MetricsLog::WorkerPath.
  std::string metrics_path;
};

// Parses and validates a job file. Each override is "section.field=VALUE"
// (`cairn train --set`), VALUE in YAML (`256`, `[1024, 1024]`, `adam`); it
// replaces or adds that field before the job is validated, with the same
// checks and messages as the file. JobConfig::text is then the job as run.
StatusOr<JobConfig> LoadJobConfig(const std::string& path, const std::vector<std::string>& overrides = {});
// Parses YAML text (for tests).
StatusOr<JobConfig> ParseJobConfig(const std::string& yaml_text, const std::vector<std::string>& overrides = {});
// Validates cross-field rules (after flag overrides, too).
Status ValidateJobConfig(const JobConfig& config);

// Whether data.kind `kind` is a click log (synthetic_clicks, criteo_tsv).
bool IsClickData(const std::string& kind);

// A data kind of one's own (data.kind in a job file, for every launcher):
// what a factory gives each process of the job, built from the job's data
// section (its generic fields: examples, features, seed, dir, paths,
// train_limit, test_limit).
struct DataSources {
  std::unique_ptr<ExampleSource> train;
  std::unique_ptr<ExampleSource> test;  // may be null: no evaluation
  int64_t features = 0;                 // the model's model.features (its x's width)
  int64_t slots = 0;                    // categorical slots (an "ids" input of that width)
};
using DataFactory = std::function<StatusOr<DataSources>(const DataConfig& data)>;
// Registers `kind` (call before any job starts). AlreadyExists for a
// built-in or registered kind.
Status RegisterData(const std::string& kind, DataFactory factory);
// The factory of a registered kind (empty if none).
DataFactory RegisteredData(const std::string& kind);

}  // namespace cairn
