#include "bench/training_bench.h"

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "bench/child_process.h"
#include "bench/pushpull_bench.h"
#include "bench/scratch_dir.h"

namespace cairn {
namespace {

StatusOr<TrainingRunFigures> ReadSummary(const std::string& path, int64_t steps, int64_t* batch_size) {
  std::ifstream in(path);
  if (!in) return NotFound("the run left no summary at '" + path + "'");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("summary '" + path + "' is not a JSON object");
  const auto rate = j.find("examples_per_sec");
  const auto batch = j.find("batch_size");
  if (rate == j.end() || !rate->is_number() || batch == j.end() || !batch->is_number_integer()) {
    return DataLoss("summary '" + path + "' lacks a numeric examples_per_sec or batch_size");
  }
  TrainingRunFigures f;
  f.examples_per_sec = rate->get<double>();
  *batch_size = batch->get<int64_t>();
  const auto times = j.find("workers_time");
  if (times == j.end()) {  // in-process: one worker, all of it compute
    f.step_ms = f.examples_per_sec > 0 ? 1e3 * static_cast<double>(*batch_size) / f.examples_per_sec : 0;
    return f;
  }
  if (!times->is_array() || times->empty()) return DataLoss("summary '" + path + "': workers_time is not a list");
  for (const nlohmann::json& w : *times) {
    f.step_ms += w.value("seconds", 0.0);
    f.pull_ms += w.value("pull_seconds", 0.0);
    f.push_ms += w.value("push_seconds", 0.0);
  }
  const double per = 1e3 / (static_cast<double>(times->size()) * static_cast<double>(steps));
  f.step_ms *= per;
  f.pull_ms *= per;
  f.push_ms *= per;
  return f;
}

StatusOr<std::string> ThisBinary() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return Unavailable("cannot find this program's binary (/proc/self/exe: " + ec.message() + "); pass --cairn");
  return exe.string();
}

// One `cairn train JOB <flags> ...` run of o.steps steps per worker.
StatusOr<TrainingRunFigures> RunTrain(const TrainingBenchOptions& o, const std::string& cairn,
                                      const std::string& summary, const std::vector<std::string>& flags,
                                      int64_t* batch_size) {
  const std::string steps = std::to_string(o.steps);
  std::vector<std::string> argv = {cairn, "train", o.job_path};
  argv.insert(argv.end(), flags.begin(), flags.end());
  for (const std::string& set : o.sets) argv.insert(argv.end(), {"--set", set});
  // Bounded by --max-steps rather than epochs; one progress line. Evaluation
  // is excluded from the throughput anyway: one test example keeps it short.
  argv.insert(argv.end(), {"--max-steps", steps, "--epochs", "1000", "--log-every", steps, "--test-limit", "1",
                           "--summary", summary});
  std::error_code ec;
  std::filesystem::remove(summary, ec);  // an earlier run's summary must not pass for this one's
  const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::duration<double>(o.timeout_seconds));
  RETURN_IF_ERROR(RunChildProcess(argv, limit));
  return ReadSummary(summary, o.steps, batch_size);
}

// "1024,1024" -> "[1024,1024]", checked.
StatusOr<std::string> HiddenList(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789,") != std::string::npos || text.front() == ',' ||
      text.back() == ',' || text.find(",,") != std::string::npos) {
    return InvalidArgument("--hidden '" + text + "': expected layer widths such as 1024,1024");
  }
  return "[" + text + "]";
}

nlohmann::json RunJson(const TrainingRunFigures& f) {
  return {{"run", f.label},       {"examples_per_sec", f.examples_per_sec}, {"step_ms", f.step_ms},
          {"pull_ms", f.pull_ms}, {"push_ms", f.push_ms},                   {"other_ms", f.other_ms()}};
}

}  // namespace

std::string TrainingBenchResult::ToJson() const {
  nlohmann::json j = nlohmann::json::array();
  for (const TrainingBenchWidth& w : widths) {
    nlohmann::json rounds = nlohmann::json::array();
    for (const auto& round : w.rounds) {
      nlohmann::json runs = nlohmann::json::array();
      for (const TrainingRunFigures& f : round) runs.push_back(RunJson(f));
      rounds.push_back(runs);
    }
    j.push_back({{"hidden", w.hidden.empty() ? "job" : w.hidden},
                 {"batch_size", w.batch_size},
                 {"rounds", rounds},
                 {"one_worker_over_in_process", w.one_worker_over_in_process},
                 {"two_workers_over_in_process", w.two_workers_over_in_process},
                 {"series_over_in_process", w.series_over_in_process},
                 {"step_over_compute_pull_push_apart", w.step_over_apart}});
  }
  return nlohmann::json{{"widths", j}}.dump(2);
}

std::string FormatTrainingWidth(const TrainingBenchWidth& w, int64_t steps) {
  std::string out = fmt::format("model hidden {}, batch {}, {} steps per worker, {} round(s)\n",
                                w.hidden.empty() ? "(the job's)" : w.hidden, w.batch_size, steps, w.rounds.size());
  out += fmt::format("{:<26} {:>11} {:>9} {:>9} {:>9} {:>9}\n", "run", "examples/s", "ms/step", "pull ms",
                     "push ms", "other ms");
  for (size_t r = 0; r < w.rounds.size(); ++r) {
    for (const TrainingRunFigures& f : w.rounds[r]) {
      out += fmt::format("{:<26} {:>11.0f} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f}\n",
                         fmt::format("r{} {}", r, f.label), f.examples_per_sec, f.step_ms, f.pull_ms, f.push_ms,
                         f.other_ms());
    }
  }
  out += fmt::format(
      "medians of per-round ratios: 1+1 / in-process {:.2f} | 1+1 series / in-process {:.2f} | 2 workers / "
      "in-process {:.2f}\n1+1 step / (in-process step + series pull + series push) {:.2f}{}\n",
      w.one_worker_over_in_process, w.series_over_in_process, w.two_workers_over_in_process, w.step_over_apart,
      w.step_over_apart < 1 ? " (communication overlaps compute)" : " (communication in series)");
  return out;
}

StatusOr<TrainingBenchResult> RunTrainingBench(const TrainingBenchOptions& o) {
  if (!std::filesystem::is_regular_file(o.job_path)) return NotFound("job file '" + o.job_path + "' not found");
  if (o.rounds < 1 || o.steps < 1 || o.servers < 1) return InvalidArgument("--rounds, --steps and --servers must be >= 1");
  std::string cairn = o.cairn_binary;
  if (cairn.empty()) {
    ASSIGN_OR_RETURN(cairn, ThisBinary());
  }
  std::vector<std::string> widths = o.hidden;
  if (widths.empty()) widths.push_back("");
  std::vector<std::string> lists;
  for (const std::string& h : widths) {
    if (h.empty()) {
      lists.push_back("");
      continue;
    }
    ASSIGN_OR_RETURN(std::string list, HiddenList(h));
    lists.push_back(list);
  }
  ASSIGN_OR_RETURN(std::unique_ptr<ScratchDir> scratch, ScratchDir::Make("", "cairn-bench-train"));
  const std::string summary = scratch->path() + "/summary.json";
  TrainingBenchResult result;
  for (size_t i = 0; i < widths.size(); ++i) {
    TrainingBenchWidth w;
    w.hidden = widths[i];
    std::vector<std::string> model;
    if (!lists[i].empty()) model = {"--set", "model.hidden=" + lists[i]};
    struct Run {
      const char* label;
      std::vector<std::string> flags;
    };
    const std::vector<Run> runs = {
        {"in-process", {"--in-process"}},
        {"1+1 series", {"--local", "--servers", "1", "--workers", "1", "--overlap", "false"}},
        {"1+1", {"--local", "--servers", "1", "--workers", "1"}},
        {"2+2", {"--local", "--servers", std::to_string(o.servers), "--workers", "2"}},
    };
    std::vector<double> one, two, series, apart;
    for (int r = 0; r < o.rounds; ++r) {
      std::vector<TrainingRunFigures> round;
      for (const Run& run : runs) {
        spdlog::info("bench train: hidden {}, round {}/{}: {} ({} steps per worker)",
                     w.hidden.empty() ? "(the job's)" : w.hidden, r + 1, o.rounds, run.label, o.steps);
        std::vector<std::string> flags = run.flags;
        flags.insert(flags.end(), model.begin(), model.end());
        ASSIGN_OR_RETURN(TrainingRunFigures f, RunTrain(o, cairn, summary, flags, &w.batch_size));
        f.label = run.label;
        round.push_back(f);
      }
      const double in_process = round[0].examples_per_sec;
      if (in_process > 0) {
        series.push_back(round[1].examples_per_sec / in_process);
        one.push_back(round[2].examples_per_sec / in_process);
        two.push_back(round[3].examples_per_sec / in_process);
      }
      const double sum = round[0].step_ms + round[1].pull_ms + round[1].push_ms;
      if (sum > 0) apart.push_back(round[2].step_ms / sum);
      w.rounds.push_back(std::move(round));
    }
    w.one_worker_over_in_process = MedianRatio(one);
    w.two_workers_over_in_process = MedianRatio(two);
    w.series_over_in_process = MedianRatio(series);
    w.step_over_apart = MedianRatio(apart);
    std::printf("\n%s", FormatTrainingWidth(w, o.steps).c_str());
    std::fflush(stdout);
    result.widths.push_back(std::move(w));
  }
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << result.ToJson() << "\n";
    if (!out) return DataLoss("cannot write '" + o.json_path + "'");
  }
  return result;
}

}  // namespace cairn
