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
#include "launch/job_config.h"
#include "launch/metrics_log.h"
#include "launch/mpi_context.h"
#include "launch/snapshot_tools.h"
#include "launch/train_job.h"
#include "worker/criteo_tsv.h"
#include "worker/synthetic_clicks.h"

namespace cairn {
namespace {

// SIGINT and SIGTERM while a job trains (train, worker): the first asks the
// workers to stop at their next step boundary (the job then takes its final
// snapshot and writes its summary, see RunLocalJob); a second ends the
// process at once. Signals stop at this edge: the job gets only the flag.
// A signal handler can reach only globals, and only lock-free atomics and
// write(2) are safe in it.
std::atomic<bool> g_stop{false};
std::atomic<int> g_stop_signal{0};

void Say(const char* text) { (void)!write(STDERR_FILENO, text, std::char_traits<char>::length(text)); }

extern "C" void OnStopSignal(int signal) {
  if (g_stop_signal.exchange(signal) != 0) {
    Say("a second stop signal: exiting at once\n");
    _exit(128 + signal);
  }
  g_stop.store(true);
  Say(signal == SIGINT ? "SIGINT: stop requested: training stops at the next step boundary, then the final snapshot "
                         "and the summary (a second signal exits at once)\n"
                       : "SIGTERM: stop requested: training stops at the next step boundary, then the final snapshot "
                         "and the summary (a second signal exits at once)\n");
}

void CatchStopSignals() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// A job a signal stopped exits 128 + the signal (130 for SIGINT, 143 for
// SIGTERM), as if the signal had ended it, after its final snapshot and
// summary: it did not run to its end, and running it again continues it.
int StoppedExitCode(const JobSummary& s) {
  if (!s.stopped) return 0;
  const int signal = g_stop_signal.load();
  spdlog::warn("stopped by {} before the last step{}: exiting with code {}; the same command continues the job",
               signal == SIGINT ? "SIGINT" : "SIGTERM",
               s.last_snapshot >= 0 ? fmt::format(" (final snapshot {})", s.last_snapshot) : "", 128 + signal);
  return 128 + signal;
}

struct TrainFlags {
  std::string job_path;
  bool local = false;
  bool in_process = false;
  std::optional<int> servers, workers;
  std::optional<int64_t> max_steps, epochs, log_every, test_limit;
  std::optional<uint64_t> seed;
  std::optional<std::string> bind, advertise, consistency, straggler;
  std::optional<bool> overlap;
  std::vector<std::string> sets;  // --set section.field=VALUE
  std::string summary_path;
  std::string metrics_path;
  std::optional<std::string> model_dir;
  std::string server_model_dir;  // cairn server --model-dir
  bool fresh = false;
  std::optional<int64_t> snapshot_every_steps;
  std::optional<double> snapshot_every_secs;
  // Standalone processes.
  std::string cluster_path;
  int index = 0;
  int io_threads = 1;
  // Authentication.
  std::string secret_file;
  bool insecure = false;
};

// CLI11 reads "-1" into an unsigned option as 2^64 - 1: refuse the sign.
const CLI::Validator kNonNegative(
    [](std::string& text) { return !text.empty() && text[0] == '-' ? "must be >= 0, got " + text : std::string(); },
    "NONNEGATIVE");

void AddInsecureFlag(CLI::App* app, TrainFlags& f) {
  app->add_flag("--insecure", f.insecure,
                "Run without authentication: the servers accept anyone who can reach them (logged as a warning)");
}

void AddSecretFileOption(CLI::App* app, TrainFlags& f) {
  app->add_option("--secret-file", f.secret_file,
                  "The job's secret (made by `cairn secret --out PATH`, mode 0600; overrides the cluster file's "
                  "secret_file)");
}

// Options `train` and `worker` share.
void AddJobOptions(CLI::App* train, TrainFlags& f) {
  train->add_option("job", f.job_path, "Job file (YAML), e.g. launch/examples/linear_regression.yaml")->required();
  train->add_option("--set", f.sets,
                    "section.field=VALUE: override a job field (repeatable; VALUE in YAML, e.g. "
                    "--set train.batch_size=256 --set model.hidden=[1024,1024]), checked as the file is")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  train->add_option("--max-steps", f.max_steps, "Stop each worker after N steps (overrides train.max_steps)");
  train->add_option("--epochs", f.epochs, "Epochs over the data (overrides train.epochs)");
  train->add_option("--seed", f.seed, "Shuffling seed (overrides train.seed)")->check(kNonNegative);
  train->add_option("--log-every", f.log_every, "Progress line every N steps (overrides train.log_every_steps)");
  train->add_option("--test-limit", f.test_limit,
                    "Evaluate on the first N test examples only (overrides data.test_limit; 0: all)");
  train->add_option("--straggler", f.straggler,
                    "W:F: worker W runs F times slower (it sleeps F - 1 times its step time after each step); "
                    "for benchmarks");
  train->add_option("--overlap", f.overlap,
                    "true or false: in async mode, pull the next step's variables during this step's backward pass "
                    "and wait for a step's push only at the next step (overrides train.overlap; default true)");
  train->add_option("--consistency", f.consistency, "async, sync or ssp (overrides cluster.consistency; ssp takes cluster.staleness, default 3)");
  train->add_option("--bind", f.bind, "Address servers listen on (overrides cluster.bind; 0.0.0.0 for multi-host)");
  train->add_option("--advertise", f.advertise, "Host name or address workers dial (overrides cluster.advertise)");
  train->add_option("--summary", f.summary_path, "Write a JSON summary of the run to this file");
  train->add_option("--metrics", f.metrics_path,
                    "Write each worker's progress (every log step) and the run's snapshot and recovery events to "
                    "this JSON-lines file (under mpirun or standalone, worker i > 0 writes FILE with .worker<i> "
                    "before its extension); `cairn plot` draws it");
  train->add_option("--model-dir", f.model_dir,
                    "Snapshot directory (overrides snapshot.model_dir): resume from its newest committed snapshot, "
                    "save new ones there");
  train->add_flag("--fresh", f.fresh, "Start over: remove the model directory's snapshots instead of resuming");
  train->add_option("--snapshot-every-steps", f.snapshot_every_steps,
                    "Snapshot every N global steps (overrides snapshot.every_steps; 0: off)");
  train->add_option("--snapshot-every-secs", f.snapshot_every_secs,
                    "Snapshot every S seconds (overrides snapshot.every_secs; 0: off)");
  AddInsecureFlag(train, f);
}

void AddTrainCommand(CLI::App& app, TrainFlags& f) {
  CLI::App* train = app.add_subcommand("train", "Train a job on parameter servers");
  AddJobOptions(train, f);
  train->add_flag("--local", f.local,
                  "Run servers and workers as threads of this process (the default when not started by mpirun)");
  train->add_flag("--in-process", f.in_process,
                  "Run one worker with no servers (variables and optimizers in this process): the throughput ceiling");
  train->add_option("--servers", f.servers, "Number of parameter servers (overrides cluster.servers)");
  train->add_option("--workers", f.workers, "Number of workers with --local (overrides cluster.workers)");
}

void AddStandaloneCommands(CLI::App& app, TrainFlags& server, TrainFlags& worker) {
  CLI::App* s = app.add_subcommand("server", "Run one parameter server of a standalone cluster until SIGINT/SIGTERM");
  s->add_option("--cluster", server.cluster_path, "Cluster file (YAML: servers, workers)")->required();
  s->add_option("--index", server.index, "This server's index in the cluster file")->required();
  s->add_option("--io-threads", server.io_threads, "Network and handler threads")
      ->default_val(1)
      ->check(CLI::Range(1, 64));
  s->add_option("--model-dir", server.server_model_dir,
                "This server's model directory: the only one it writes snapshots to and restores from; before "
                "serving, it restores its shards from the newest committed snapshot there (restarting a server of a "
                "running job)");
  AddSecretFileOption(s, server);
  AddInsecureFlag(s, server);
  CLI::App* w = app.add_subcommand("worker", "Run one worker of a standalone cluster (worker 0 is the chief)");
  AddJobOptions(w, worker);
  w->add_option("--cluster", worker.cluster_path, "Cluster file (YAML: servers, workers)")->required();
  w->add_option("--index", worker.index, "This worker's index")->required();
  AddSecretFileOption(w, worker);
}

// The crash-safety tests arm a crash point through the environment; this,
// the command's edge, is the one place that reads it.
StatusOr<std::shared_ptr<const CrashPoints>> CrashPointsFromEnvironment() {
  const char* spec = std::getenv("CAIRN_CRASH_AT");
  if (!spec || !*spec) return std::shared_ptr<const CrashPoints>();
  StatusOr<std::shared_ptr<const CrashPoints>> points = CrashPoints::Parse(spec);
  if (!points.ok()) return points.status().WithContext("CAIRN_CRASH_AT");
  return points;
}

StatusOr<JobConfig> ConfigWithFlags(const TrainFlags& f) {
  ASSIGN_OR_RETURN(JobConfig c, LoadJobConfig(f.job_path, f.sets));
  c.metrics_path = f.metrics_path;
  ASSIGN_OR_RETURN(c.snapshot.crash_points, CrashPointsFromEnvironment());
  if (f.servers) c.cluster.servers = *f.servers;
  if (f.workers) c.cluster.workers = *f.workers;
  if (f.max_steps) c.train.max_steps = *f.max_steps;
  if (f.epochs) c.train.epochs = *f.epochs;
  if (f.seed) c.train.seed = *f.seed;
  if (f.log_every) c.train.log_every_steps = *f.log_every;
  if (f.test_limit) c.data.test_limit = *f.test_limit;
  if (f.overlap) c.train.overlap = *f.overlap;
  if (f.straggler) {
    const std::string& text = *f.straggler;
    const size_t colon = text.find(':');
    char* end = nullptr;
    const long worker = colon == std::string::npos ? -1 : std::strtol(text.c_str(), &end, 10);
    const double factor = colon == std::string::npos ? 0 : std::strtod(text.c_str() + colon + 1, nullptr);
    if (colon == std::string::npos || end != text.c_str() + colon || worker < 0 || worker >= c.cluster.workers ||
        !(factor >= 1.0) || factor > 1000) {
      return InvalidArgument("--straggler: '" + text + "' is not W:F with W a worker (0.." +
                             std::to_string(c.cluster.workers - 1) + ") and F in [1, 1000]");
    }
    c.train.straggler = static_cast<int>(worker);
    c.train.straggler_factor = factor;
  }
  if (f.consistency) {
    StatusOr<Consistency> consistency = ParseConsistency(*f.consistency);
    if (!consistency.ok()) return consistency.status().WithContext("--consistency");
    c.cluster.consistency = *consistency;
  }
  if (f.bind) c.cluster.bind = *f.bind;
  if (f.advertise) c.cluster.advertise = *f.advertise;
  if (f.model_dir) c.snapshot.model_dir = *f.model_dir;
  if (f.snapshot_every_steps) c.snapshot.every_steps = *f.snapshot_every_steps;
  if (f.snapshot_every_secs) c.snapshot.every_secs = *f.snapshot_every_secs;
  c.cluster.insecure = f.insecure;
  c.snapshot.fresh = f.fresh;
  if (f.fresh && c.snapshot.model_dir.empty()) return InvalidArgument("--fresh needs a model directory (--model-dir)");
  if (f.in_process && !c.snapshot.model_dir.empty()) {
    return InvalidArgument("--in-process has no servers to snapshot: drop --model-dir (or snapshot.model_dir)");
  }
  Status s = ValidateJobConfig(c);
  if (!s.ok()) return s.WithContext("after command-line overrides");
  return c;
}

void PrintSummary(const JobSummary& s) {
  if (s.examples == 0 && s.resumed_from >= 0) {
    spdlog::info("done: already at global step {} (snapshot {}): nothing to train; --fresh starts over, --epochs or "
                 "--max-steps trains further",
                 s.global_step, s.resumed_from);
    return;
  }
  spdlog::info("done: global step {} in {:.2f} s, {:.0f} examples/s, final loss {:.4f}{}", s.global_step,
               s.wall_seconds, s.examples_per_sec, s.final_loss,
               s.test_accuracy >= 0 ? fmt::format(", test accuracy {:.4f}", s.test_accuracy) : "");
  for (const auto& [k, v] : s.metrics) spdlog::info("  {} = {:.6g}", k, v);
}

int Fail(const Status& s) {
  spdlog::error("{}", s.ToString());
  return 1;
}

int WriteResult(const JobSummary& s, const std::string& summary_path) {
  PrintSummary(s);
  if (!summary_path.empty()) {
    Status w = WriteSummary(s, summary_path);
    if (!w.ok()) return Fail(w);
  }
  return StoppedExitCode(s);
}

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
  synth->add_option("--seed", f.seed, "The log's seed")->check(kNonNegative);
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

int RunServer(const TrainFlags& f) {
  std::string bind, secret_file;
  StatusOr<ClusterSpec> cluster = LoadClusterFile(f.cluster_path, &bind, &secret_file);
  if (!cluster.ok()) return Fail(cluster.status());
  spdlog::set_pattern(fmt::format("[%H:%M:%S.%e] [server {}] [%l] %v", f.index));
  StatusOr<std::shared_ptr<const Secret>> secret = StandaloneSecret(f.secret_file, secret_file, f.insecure);
  if (!secret.ok()) return Fail(secret.status());
  StatusOr<std::shared_ptr<const CrashPoints>> crash = CrashPointsFromEnvironment();
  if (!crash.ok()) return Fail(crash.status());
  Status s = RunServerProcess(*cluster, f.index, bind, f.io_threads, ServerAuth{*secret, f.insecure},
                              f.server_model_dir, crash->get());
  return s.ok() ? 0 : Fail(s);
}

int RunWorker(const TrainFlags& f) {
  std::string secret_file;
  StatusOr<ClusterSpec> cluster = LoadClusterFile(f.cluster_path, nullptr, &secret_file);
  if (!cluster.ok()) return Fail(cluster.status());
  StatusOr<JobConfig> config = ConfigWithFlags(f);
  if (!config.ok()) return Fail(config.status());
  StatusOr<std::shared_ptr<const Secret>> secret = StandaloneSecret(f.secret_file, secret_file, f.insecure);
  if (!secret.ok()) return Fail(secret.status());
  config->cluster.secret = *secret;
  config->cluster.insecure = f.insecure;
  if (!config->metrics_path.empty()) config->metrics_path = MetricsLog::WorkerPath(config->metrics_path, f.index);
  spdlog::set_pattern(fmt::format("[%H:%M:%S.%e] [worker {}] [%l] %v", f.index));
  CatchStopSignals();
  StatusOr<JobSummary> s = RunWorkerProcess(*config, *cluster, f.index, &g_stop);
  if (!s.ok()) return Fail(s.status());
  return f.index == 0 ? WriteResult(*s, f.summary_path) : StoppedExitCode(*s);
}

int RunTrain(const TrainFlags& f, int* argc, char*** argv) {
  StatusOr<JobConfig> config = ConfigWithFlags(f);
  if (!config.ok()) return Fail(config.status());
  const bool use_mpi = !f.local && !f.in_process && MpiContext::LaunchedByMpirun();
  if (!use_mpi) {
    if (!f.local && !f.in_process) spdlog::info("not started by mpirun: running the embedded local cluster (--local)");
    CatchStopSignals();
    StatusOr<JobSummary> s = f.in_process ? RunInProcessJob(*config, &g_stop) : RunLocalJob(*config, &g_stop);
    if (!s.ok()) return Fail(s.status());
    return WriteResult(*s, f.summary_path);
  }
  StatusOr<std::unique_ptr<MpiContext>> mpi = MpiContext::Init(argc, argv);
  if (!mpi.ok()) return Fail(mpi.status());
  spdlog::set_pattern(fmt::format("[%H:%M:%S.%e] [rank {}] [%l] %v", (*mpi)->rank()));
  // Under mpirun the ranks are the cluster: a --workers that says otherwise
  // is a mistake (every rank sees the same numbers, so every rank fails).
  if (f.workers && *f.workers != (*mpi)->size() - config->cluster.servers) {
    return Fail(InvalidArgument("--workers " + std::to_string(*f.workers) + " disagrees with mpirun: " +
                                std::to_string((*mpi)->size()) + " ranks with --servers " +
                                std::to_string(config->cluster.servers) + " make " +
                                std::to_string((*mpi)->size() - config->cluster.servers) +
                                " worker(s); drop --workers, or start -np " +
                                std::to_string(config->cluster.servers + *f.workers)));
  }
  CatchStopSignals();  // after MPI_Init, which may install handlers of its own
  StatusOr<JobSummary> s = RunMpiJob(*config, **mpi, &g_stop);
  if (!s.ok()) {
    Fail(s.status());
    (*mpi)->Abort(1);  // one rank failed: end the job rather than hang the others
  }
  if ((*mpi)->rank() == config->cluster.servers) return WriteResult(*s, f.summary_path);
  return StoppedExitCode(*s);
}

// A server's connections, a snapshot's files: more descriptors than the
// usual soft limit of 1024 (the connection cap is kept below whatever this
// leaves, see EffectiveMaxConnections).
void RaiseFileLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 1 << 16);
  setrlimit(RLIMIT_NOFILE, &rl);
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
  TrainFlags train_flags;
  AddTrainCommand(app, train_flags);
  TrainFlags server_flags, worker_flags;
  AddStandaloneCommands(app, server_flags, worker_flags);
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
  if (app.got_subcommand("train") || app.got_subcommand("server") || app.got_subcommand("worker")) {
    spdlog::info("kernels: {}", CpuLevelReport());
  }
  if (app.got_subcommand("train")) return RunTrain(train_flags, &argc, &argv);
  if (app.got_subcommand("server")) return RunServer(server_flags);
  if (app.got_subcommand("worker")) return RunWorker(worker_flags);
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
