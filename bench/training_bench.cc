#include "bench/training_bench.h"

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "bench/child_process.h"
#include "bench/scratch_dir.h"

namespace cairn {
namespace {

// What one `cairn train` run reported in its summary.
struct RunFigures {
  int64_t batch_size = 0;
  double examples_per_sec = 0;
};

StatusOr<RunFigures> ReadSummary(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound("the run left no summary at '" + path + "'");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("summary '" + path + "' is not a JSON object");
  const auto rate = j.find("examples_per_sec");
  const auto batch = j.find("batch_size");
  if (rate == j.end() || !rate->is_number() || batch == j.end() || !batch->is_number_integer()) {
    return DataLoss("summary '" + path + "' lacks a numeric examples_per_sec or batch_size");
  }
  return RunFigures{batch->get<int64_t>(), rate->get<double>()};
}

StatusOr<std::string> ThisBinary() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Unavailable("cannot find this program's binary (/proc/self/exe: " + ec.message() + "); pass --cairn");
  return exe.string();
}

// One `cairn train JOB <mode_flags> ...` run of o.steps steps per worker.
StatusOr<RunFigures> RunTrain(const TrainingBenchOptions& o, const std::string& cairn, const std::string& summary,
                              const std::vector<std::string>& mode_flags) {
  const std::string steps = std::to_string(o.steps);
  std::vector<std::string> argv = {cairn, "train", o.job_path};
  argv.insert(argv.end(), mode_flags.begin(), mode_flags.end());
  // Bounded by --max-steps rather than epochs; one progress line. Evaluation
  // is excluded from the throughput anyway: one test example keeps it short.
  argv.insert(argv.end(), {"--max-steps", steps, "--epochs", "1000", "--log-every", steps, "--test-limit", "1",
                           "--summary", summary});
  std::error_code ec;
  std::filesystem::remove(summary, ec);  // an earlier run's summary must not pass for this one's
  const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(o.timeout_seconds));
  RETURN_IF_ERROR(RunChildProcess(argv, limit));
  return ReadSummary(summary);
}

}  // namespace

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
  if (!std::filesystem::is_regular_file(o.job_path)) return NotFound("job file '" + o.job_path + "' not found");
  std::string cairn = o.cairn_binary;
  if (cairn.empty()) {
    ASSIGN_OR_RETURN(cairn, ThisBinary());
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ScratchDir> scratch, ScratchDir::Make("", "cairn-bench-train"));
  const std::string summary = scratch->path() + "/summary.json";
  TrainingBenchResult r;

  spdlog::info("bench train: in-process ceiling, {} steps (cairn train --in-process)", o.steps);
  ASSIGN_OR_RETURN(RunFigures in_process, RunTrain(o, cairn, summary, {"--in-process"}));
  r.batch_size = in_process.batch_size;
  r.in_process = in_process.examples_per_sec;
  for (int workers : {1, 2}) {
    spdlog::info("bench train: local cluster, {} server(s), {} worker(s), {} steps each (cairn train --local)",
                 o.servers, workers, o.steps);
    ASSIGN_OR_RETURN(RunFigures s, RunTrain(o, cairn, summary,
                                            {"--local", "--servers", std::to_string(o.servers), "--workers",
                                             std::to_string(workers)}));
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
