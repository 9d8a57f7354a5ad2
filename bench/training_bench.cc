#include "bench/training_bench.h"

#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "launch/job_config.h"
#include "launch/train_job.h"

namespace cairn {

std::string TrainingBenchResult::ToJson() const {
  nlohmann::json j{{"batch_size", batch_size},
                   {"in_process_examples_per_sec", in_process},
                   {"one_worker_examples_per_sec", one_worker},
                   {"two_workers_examples_per_sec", two_workers},
                   {"one_worker_over_in_process", in_process > 0 ? one_worker / in_process : 0},
                   {"two_workers_over_in_process", in_process > 0 ? two_workers / in_process : 0}};
  return j.dump(2);
}

StatusOr<TrainingBenchResult> RunTrainingBench(const TrainingBenchOptions& o) {
  ASSIGN_OR_RETURN(JobConfig c, LoadJobConfig(o.job_path));
  c.train.max_steps = o.steps;
  c.train.epochs = 1000;  // bounded by max_steps
  c.train.log_every_steps = o.steps;
  c.cluster.servers = o.servers;
  c.data.test_limit = 1;  // evaluation is excluded from throughput anyway; keep it short
  TrainingBenchResult r;
  r.batch_size = c.train.batch_size;

  spdlog::info("bench train: in-process ceiling, {} steps", o.steps);
  ASSIGN_OR_RETURN(JobSummary in_process, RunInProcessJob(c));
  r.in_process = in_process.examples_per_sec;
  for (int workers : {1, 2}) {
    c.cluster.workers = workers;
    spdlog::info("bench train: local cluster, {} server(s), {} worker(s), {} steps each", o.servers, workers, o.steps);
    ASSIGN_OR_RETURN(JobSummary s, RunLocalJob(c));
    (workers == 1 ? r.one_worker : r.two_workers) = s.examples_per_sec;
  }
  std::printf("batch %lld: in-process %.0f examples/s | 1 worker %.0f (%.0f%%) | 2 workers %.0f (%.0f%%)\n",
              static_cast<long long>(r.batch_size), r.in_process, r.one_worker, 100 * r.one_worker / r.in_process,
              r.two_workers, 100 * r.two_workers / r.in_process);
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << r.ToJson() << "\n";
    if (!out) return DataLoss("cannot write '" + o.json_path + "'");
  }
  return r;
}

}  // namespace cairn
