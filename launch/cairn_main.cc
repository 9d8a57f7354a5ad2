// The `cairn` command.
//
//   cairn train JOB.yaml [--local] [--servers S] [--workers W] [--summary F] ...
//   mpirun -np N cairn train JOB.yaml --servers S
//   cairn server --cluster CLUSTER.yaml --index I [--model-dir D] (standalone mode)
//   cairn worker --cluster CLUSTER.yaml --index J JOB.yaml [...]
//   cairn snapshots|inspect|export DIR ...
//   cairn bench pushpull [...]
//   cairn data synth-clicks --rows N [--seed S] [--split train|test] --out FILE.tsv
//   cairn secret --out PATH   (the standalone job's shared secret, mode 0600)
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "bench/bench_commands.h"
#include "bench/plot.h"
#include "common/kernels/cpu_level.h"
#include "launch/job_commands.h"
#include "launch/job_config.h"
#include "launch/metrics_log.h"
#include "launch/mpi_context.h"
#include "launch/snapshot_tools.h"
#include "launch/train_job.h"
#include "worker/criteo_tsv.h"
#include "worker/synthetic_clicks.h"

namespace cairn {
namespace {

// `cairn data synth-clicks`: the synthetic click log (data.kind:
// synthetic_clicks) as a Criteo TSV file, so other tools train and
// evaluate on exactly the examples Cairn does.
struct SynthClicksFlags {
  int64_t rows = 0;
  uint64_t seed = SyntheticClicksOptions().seed;
  std::string split = "train";  // made a ClickSplit at once: see SplitOf
  std::string out;
};

ClickSplit SplitOf(const SynthClicksFlags& f) { return f.split == "test" ? ClickSplit::kTest : ClickSplit::kTrain; }

void AddDataCommands(CLI::App& app, SynthClicksFlags& f) {
  CLI::App* data = app.add_subcommand("data", "Make training data");
  data->require_subcommand(1);
  CLI::App* synth = data->add_subcommand(
      "synth-clicks", "Write the synthetic click log (data.kind: synthetic_clicks) in the Criteo TSV format");
  synth->add_option("--rows", f.rows, "Examples to write: the split's first N")
      ->required()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 61));
  synth->add_option("--seed", f.seed, "The log's seed")->check(NonNegative());
  synth->add_option("--split", f.split, "train or test (the test split's examples are others)")
      ->check(CLI::IsMember({"train", "test"}));
  synth->add_option("--out", f.out, "TSV file to write (replaced whole, or left alone on failure)")->required();
}

int RunSynthClicks(const SynthClicksFlags& f) {
  const ClickSplit split = SplitOf(f);
  SyntheticClicksOptions options;
  options.seed = f.seed;
  (split == ClickSplit::kTrain ? options.rows : options.test_rows) = f.rows;
  StatusOr<std::unique_ptr<SyntheticClicks>> clicks = SyntheticClicks::Create(options, split);
  if (!clicks.ok()) return Fail(clicks.status());
  const auto start = std::chrono::steady_clock::now();
  if (Status s = WriteCriteoTsv(**clicks, 0, f.rows, f.out); !s.ok()) return Fail(s);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("wrote {} {} examples (seed {}) to {} in {:.2f} s ({:.0f} examples/s)", f.rows, f.split, f.seed,
               f.out, seconds, f.rows / seconds);
  if (split == ClickSplit::kTest) {
    StatusOr<double> bayes = BayesAuc(options);
    if (!bayes.ok()) return Fail(bayes.status());
    spdlog::info("Bayes AUC of these examples (the planted probabilities'): {:.4f}", *bayes);
  }
  return 0;
}

int RunCommand(int argc, char** argv) {
  RaiseFileLimit();
  CLI::App app{"Cairn: a parameter-server training system"};
  app.require_subcommand(0, 1);
  // Options of the command itself, accepted after a subcommand's too.
  app.fallthrough();
  bool version = false;
  app.add_flag("--version", version, "Print the version and the CPU level the kernels run at, and exit");
  std::string cpu_level;
  app.add_option("--cpu-level", cpu_level,
                 "Run the kernels at this level or lower: baseline, avx2 or avx512 (default: the best this CPU has)");
  std::string secret_out;
  CLI::App* secret = app.add_subcommand("secret", "Create a new secret file for a standalone job (mode 0600)");
  secret->add_option("--out", secret_out, "Where to write it (refused if it exists)")->required();
  JobCommands job_commands(app);
  AddBenchCommands(app);
  AddPlotCommand(app);
  AddSnapshotTools(app);
  SynthClicksFlags synth_clicks_flags;
  AddDataCommands(app, synth_clicks_flags);
  CLI11_PARSE(app, argc, argv);
  if (!cpu_level.empty()) {
    StatusOr<CpuLevel> level = ParseCpuLevel(cpu_level);
    if (!level.ok()) return Fail(level.status().WithContext("--cpu-level"));
    if (Status st = SetCpuLevel(*level); !st.ok()) return Fail(st.WithContext("--cpu-level"));
  }
  if (version) {
    std::printf("cairn %s\nkernels: %s\n", CAIRN_VERSION, CpuLevelReport().c_str());
    return 0;
  }
  if (app.get_subcommands().empty()) {
    std::fprintf(stderr, "%s", app.help().c_str());
    return 2;
  }
  if (int rc = job_commands.Run(app, &argc, &argv); rc >= 0) return rc;
  if (app.got_subcommand("data")) return RunSynthClicks(synth_clicks_flags);
  if (app.got_subcommand("secret")) {
    if (Status s = WriteSecretFile(secret_out); !s.ok()) return Fail(s);
    spdlog::info("wrote a new secret to {} (mode 0600): give every server and worker of the job a copy "
                 "(--secret-file, or secret_file in the cluster file)",
                 secret_out);
    return 0;
  }
  if (int rc = RunSnapshotTools(app); rc >= 0) return rc;
  if (int rc = RunPlotCommand(app); rc >= 0) return rc;
  return RunBenchCommands(app);
}

}  // namespace
}  // namespace cairn

// The command's edge: an exception no layer below turned into a Status
// (an allocation that failed, say) ends the command with its message, not
// with std::terminate.
int main(int argc, char** argv) {
  spdlog::set_pattern("[%H:%M:%S.%e] [%l] %v");
  try {
    return cairn::RunCommand(argc, argv);
  } catch (const std::bad_alloc&) {
    spdlog::error("out of memory (std::bad_alloc): the job needs more memory than this machine gives it");
  } catch (const std::exception& e) {
    spdlog::error("unexpected error: {}", e.what());
  }
  return 1;
}
