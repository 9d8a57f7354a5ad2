// `cairn bench train JOB`: the training throughput of a job on the local
// cluster with 1 and with 2 workers, next to the same graph run in one
// process with no server (the in-process ceiling).
//
// Each measurement is one run of the `cairn train` command as a child
// process (`--in-process`, then `--local --workers 1` and `--workers 2`),
// its figure read from the run's --summary file: the bench measures exactly
// what a user runs.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace cairn {

struct TrainingBenchOptions {
  std::string job_path;       // a job file, e.g. launch/examples/fashion_mnist_mlp.yaml
  int64_t steps = 400;        // per worker, for each measurement
  int servers = 2;            // servers of the cluster runs
  std::string json_path;      // write the results here too ("" for none)
  std::string cairn_binary;   // the `cairn` command to run ("": this process's own binary)
  double timeout_seconds = 600;  // a run still going after this long is killed and the bench fails
};

struct TrainingBenchResult {
  int64_t batch_size = 0;
  double in_process = 0;      // examples/s, no servers
  double one_worker = 0;      // examples/s, local cluster, 1 worker
  double two_workers = 0;     // examples/s, local cluster, 2 workers
  std::string ToJson() const;
};

// Fails if a run cannot be started, fails, outlives timeout_seconds, or
// leaves no readable summary; the error quotes the end of the run's output.
StatusOr<TrainingBenchResult> RunTrainingBench(const TrainingBenchOptions& options);

}  // namespace cairn
