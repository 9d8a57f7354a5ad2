// `cairn bench train JOB`: the training throughput of a job and where each
// step's time goes.
//
// For each model width (the job's own, or each --hidden list) and each
// round, four runs, interleaved: the same graph in one process with no
// server (the in-process ceiling: a step's compute alone); 1 server + 1
// worker with communication in series (`--overlap false`: each step pulls,
// computes, pushes and waits); 1 server + 1 worker as configured (overlap
// on in async mode); and `servers` servers + 2 workers.
//
// Each run is the `cairn train` command as a child process, its figures read
// from the run's --summary file (examples/s, and each worker's seconds in
// pulls and pushes): the bench measures exactly what a user runs. Per step:
// ms per step, and of it pull, push (their waits included) and the rest
// (compute, data and bookkeeping).
//
// "Measured apart" (issue 14): compute = the in-process step; pull and push
// = the series run's per-step pull and push. Overlap works when the 1+1
// step is shorter than their sum.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace cairn {

struct TrainingBenchOptions {
  std::string job_path;       // a job file, e.g. launch/examples/fashion_mnist_mlp.yaml
  int64_t steps = 400;        // per worker, for each measurement
  int servers = 2;            // servers of the two-worker runs (one-worker runs use 1)
  int rounds = 1;             // each width's runs are repeated, interleaved
  // Hidden layer lists to measure ("1024,1024"); empty: the job's own model.
  std::vector<std::string> hidden;
  std::vector<std::string> sets;  // passed on as `cairn train --set` to every run
  std::string json_path;      // write the results here too ("" for none)
  std::string cairn_binary;   // the `cairn` command to run ("": this process's own binary)
  double timeout_seconds = 600;  // a run still going after this long is killed and the bench fails
};

// One `cairn train` run.
struct TrainingRunFigures {
  std::string label;        // "in-process", "1+1 series", "1+1", "2+2"
  double examples_per_sec = 0;
  double step_ms = 0;       // a worker's wall time per step (mean over workers)
  double pull_ms = 0;       // of it, in pulls (0 in-process)
  double push_ms = 0;       // of it, in pushes
  double other_ms() const { return step_ms - pull_ms - push_ms; }
};

struct TrainingBenchWidth {
  std::string hidden;       // "" : the job's own
  int64_t batch_size = 0;
  std::vector<std::vector<TrainingRunFigures>> rounds;  // each round's four runs, in the order above
  // Medians over rounds of per-round ratios.
  double one_worker_over_in_process = 0;
  double two_workers_over_in_process = 0;
  double series_over_in_process = 0;
  // 1+1 step / (in-process step + series pull + series push): < 1 when
  // communication is no longer in series with compute.
  double step_over_apart = 0;
};

struct TrainingBenchResult {
  std::vector<TrainingBenchWidth> widths;
  std::string ToJson() const;
};

// Fails if a run cannot be started, fails, outlives timeout_seconds, or
// leaves no readable summary; the error quotes the end of the run's output.
StatusOr<TrainingBenchResult> RunTrainingBench(const TrainingBenchOptions& options);

// The table printed for one width.
std::string FormatTrainingWidth(const TrainingBenchWidth& width, int64_t steps);

}  // namespace cairn
