// `cairn bench train JOB`: the training throughput of a job on the local
// cluster with 1 and with 2 workers, next to the same graph run in one
// process with no server (the in-process ceiling).
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
};

struct TrainingBenchResult {
  int64_t batch_size = 0;
  double in_process = 0;      // examples/s, no servers
  double one_worker = 0;      // examples/s, local cluster, 1 worker
  double two_workers = 0;     // examples/s, local cluster, 2 workers
  std::string ToJson() const;
};

StatusOr<TrainingBenchResult> RunTrainingBench(const TrainingBenchOptions& options);

}  // namespace cairn
