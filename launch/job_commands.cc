#include "launch/job_commands.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>

#include <spdlog/spdlog.h>

#include "common/kernels/cpu_level.h"
#include "launch/job_config.h"
#include "launch/training_main.h"
#include "launch/metrics_log.h"
#include "launch/mpi_context.h"
#include "launch/train_job.h"

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
  train->add_option("--seed", f.seed, "Shuffling seed (overrides train.seed)")->check(NonNegative());
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

int WriteResult(const JobSummary& s, const std::string& summary_path) {
  PrintSummary(s);
  if (!summary_path.empty()) {
    Status w = WriteSummary(s, summary_path);
    if (!w.ok()) return Fail(w);
  }
  return StoppedExitCode(s);
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

}  // namespace

const CLI::Validator& NonNegative() {
  static const CLI::Validator validator(
      [](std::string& text) { return !text.empty() && text[0] == '-' ? "must be >= 0, got " + text : std::string(); },
      "NONNEGATIVE");
  return validator;
}

int Fail(const Status& s) {
  spdlog::error("{}", s.ToString());
  return 1;
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


JobCommands::JobCommands(CLI::App& app) {
  AddTrainCommand(app, train_);
  AddStandaloneCommands(app, server_, worker_);
}

int JobCommands::Run(const CLI::App& app, int* argc, char*** argv) {
  const bool train = app.got_subcommand("train"), server = app.got_subcommand("server"),
             worker = app.got_subcommand("worker");
  if (!train && !server && !worker) return -1;
  spdlog::info("kernels: {}", CpuLevelReport());
  if (train) return RunTrain(train_, argc, argv);
  if (server) return RunServer(server_);
  return RunWorker(worker_);
}

int TrainingMain(int argc, char** argv) {
  spdlog::set_pattern("[%H:%M:%S.%e] [%l] %v");
  try {
    RaiseFileLimit();
    CLI::App app{"Trains jobs on Cairn parameter servers"};
    app.require_subcommand(1);
    app.fallthrough();
    std::string cpu_level;
    app.add_option("--cpu-level", cpu_level,
                   "Run the kernels at this level or lower: baseline, avx2 or avx512 (default: the best this CPU has)");
    JobCommands commands(app);
    CLI11_PARSE(app, argc, argv);
    if (!cpu_level.empty()) {
      StatusOr<CpuLevel> level = ParseCpuLevel(cpu_level);
      if (!level.ok()) return Fail(level.status().WithContext("--cpu-level"));
      if (Status st = SetCpuLevel(*level); !st.ok()) return Fail(st.WithContext("--cpu-level"));
    }
    return commands.Run(app, &argc, &argv);
  } catch (const std::bad_alloc&) {
    spdlog::error("out of memory (std::bad_alloc): the job needs more memory than this machine gives it");
  } catch (const std::exception& e) {
    spdlog::error("unexpected error: {}", e.what());
  }
  return 1;
}

}  // namespace cairn
