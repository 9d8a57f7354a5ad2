// The synthetic linear-regression job: y = X·w* + b* + noise, with a known
// true weight vector w*, trained by asynchronous SGD through the parameter
// servers. Its gradient is written by hand; graph-based models come with
// the Session.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <Eigen/Core>

#include "common/status.h"
#include "common/variable_spec.h"
#include "worker/ps_client.h"

namespace cairn {

struct LinearProblemOptions {
  int64_t examples = 100000;  // across all workers
  int64_t features = 1000;
  double noise_stddev = 0.01;
  uint64_t seed = 7;
};

// The true parameters, a pure function of (features, seed).
struct LinearTruth {
  Eigen::VectorXf w;
  float b = 0;
};
LinearTruth MakeLinearTruth(const LinearProblemOptions& options);

// Worker `worker`'s share of the examples (a pure function of the options
// and the worker index): rows i with i % num_workers == worker.
struct LinearShard {
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> x;
  Eigen::VectorXf y;
};
LinearShard MakeLinearShard(const LinearProblemOptions& options, const LinearTruth& truth, int worker,
                            int num_workers);

constexpr const char* kLinearWeights = "linear/w";
constexpr const char* kLinearBias = "linear/b";
std::vector<VariableSpec> LinearVariables(int64_t features);

struct LinearTrainOptions {
  int64_t batch_size = 100;
  int64_t epochs = 2;
  int64_t max_steps = 0;  // 0: no cap
  uint64_t seed = 1;      // shuffling
  int worker = 0;
};

struct TrainProgress {
  int64_t step = 0;        // this worker's steps so far
  int64_t total_steps = 0; // this worker's planned steps
  double loss = 0;         // mean loss since the last report
};

struct WorkerReport {
  int64_t steps = 0;
  int64_t examples = 0;
  double final_loss = 0;  // mean loss over the last reporting window
  double seconds = 0;
  // Wall-clock start and end of the training loop (seconds since the epoch),
  // so a job's throughput spans its workers' first start to last end.
  double start_time = 0;
  double end_time = 0;
};

// Trains on `shard` until epochs or max_steps are done. `on_progress` (may be
// empty) is called every `log_every` steps and at the end.
StatusOr<WorkerReport> TrainLinearRegression(PsClient& client, const LinearShard& shard,
                                             const LinearTrainOptions& options, int64_t log_every,
                                             const std::function<void(const TrainProgress&)>& on_progress);

// ||w - w*|| / ||w*|| and |b - b*| after pulling the current values.
struct LinearDistance {
  double weight_distance = 0;
  double relative_distance = 0;
  double bias_error = 0;
};
StatusOr<LinearDistance> DistanceToTruth(PsClient& client, const LinearTruth& truth);

}  // namespace cairn
