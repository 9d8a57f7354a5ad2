// Running a training job: on the embedded local cluster (servers and workers
// as threads of this process) or as one rank of an mpirun job.
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "common/cluster_spec.h"
#include "common/handshake.h"
#include "common/status.h"
#include "launch/cluster_file.h"
#include "launch/job_config.h"
#include "launch/mpi_context.h"

namespace cairn {

struct JobSummary {
  std::string job;
  std::string mode;  // "local", "in-process", "mpirun" or "standalone"
  int servers = 0;
  int workers = 0;
  int64_t batch_size = 0;    // examples per step of one worker
  int64_t global_step = 0;   // steps applied across all workers
  double final_loss = 0;     // mean of the workers' last reported losses
  double wall_seconds = 0;
  double examples_per_sec = 0;
  double test_accuracy = -1;  // classifiers: the chief's last evaluation
  int64_t resumed_from = -1;  // the snapshot step training resumed from (-1: a fresh start)
  int64_t examples = 0;       // trained on in this run, all workers (0: a re-run of a finished job)
  int64_t snapshots = 0;      // snapshots committed by this run
  int64_t last_snapshot = -1; // the step of the final snapshot (-1: no model directory)
  double snapshot_stall_seconds = 0;  // training time spent copying shards for snapshots
  bool stopped = false;       // a stop request (SIGINT/SIGTERM) ended training before its last step
  bool authenticated = false; // every connection proved the job's secret (false: --insecure, or in-process)
  std::map<std::string, double> metrics;  // the job's own metrics
  std::string consistency = "async";      // async | sync | ssp
  int staleness = -1;                     // ssp's bound (-1: not ssp)
  bool overlap = false;                   // async: communication overlapped with compute (train.overlap)
  // Each worker's training time and the part of it spent in pulls and pushes
  // (waits for other workers included), in worker order; empty in-process.
  struct WorkerTimes {
    double seconds = 0, pull_seconds = 0, push_seconds = 0;
  };
  std::vector<WorkerTimes> worker_times;

  std::string ToJson() const;
};

Status WriteSummary(const JobSummary& summary, const std::string& path);

// Every Run*Job below takes `stop` (borrowed, may be null): once it is set
// (by a signal handler, say: see cairn_main.cc), the workers stop training at
// their next step boundary (TrainerOptions::stop), and the job ends as if
// done: the final snapshot (with a model directory) and the summary, which
// says `stopped`.

// Starts config.cluster.servers servers and config.cluster.workers worker
// threads in this process, trains, and returns the summary.
StatusOr<JobSummary> RunLocalJob(const JobConfig& config, const std::atomic<bool>* stop = nullptr);

// The same job in one thread with no servers: variables, optimizers and
// updates live in this process (InProcessStore). The ceiling that the
// cluster's throughput is measured against. One worker.
StatusOr<JobSummary> RunInProcessJob(const JobConfig& config, const std::atomic<bool>* stop = nullptr);

// This rank's part of an mpirun job: ranks [0, servers) serve, the rest
// train; rank `servers` (the chief) returns the summary, other ranks an
// empty one (with `stopped` set as the chief's is).
StatusOr<JobSummary> RunMpiJob(const JobConfig& config, MpiContext& mpi, const std::atomic<bool>* stop = nullptr);

// Standalone mode: one process per server and per worker, started and
// restarted independently, all reading the same cluster file
// (launch/cluster_file.h: LoadClusterFile).

// A standalone process's secret: from `flag_file` (--secret-file) or else
// `cluster_file` (the cluster file's secret_file), checked as
// Secret::FromFile does; null with `insecure` (logged). FailedPrecondition,
// saying how to make one, if there is neither.
StatusOr<std::shared_ptr<const Secret>> StandaloneSecret(const std::string& flag_file, const std::string& cluster_file,
                                                         bool insecure);

// Serves as server `index` until SIGINT or SIGTERM. With a `model_dir`
// holding a committed snapshot, the server first restores its shards from
// the newest one (a restarted server picks up where that snapshot was; see
// ServerOptions::restore_dir); snapshots are written there only.
// `crash_points` (may be null) arm the crash-safety tests' points.
Status RunServerProcess(const ClusterSpec& cluster, int index, const std::string& bind, int io_threads,
                        const ServerAuth& auth, const std::string& model_dir = "",
                        const CrashPoints* crash_points = nullptr);

// Trains as worker `index` of the cluster (worker 0 is the chief: it
// restores, snapshots, and returns the summary; others return an empty one,
// with `stopped` set if a stop request ended their training).
StatusOr<JobSummary> RunWorkerProcess(const JobConfig& config, const ClusterSpec& cluster, int index,
                                      const std::atomic<bool>* stop = nullptr);

}  // namespace cairn
