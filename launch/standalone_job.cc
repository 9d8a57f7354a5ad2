// Standalone mode: one process per server and per worker (train_job.h).
#include <pthread.h>
#include <signal.h>

#include <filesystem>

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "common/event_loop.h"
#include "common/snapshot/model_dir.h"
#include "launch/job_runner.h"
#include "launch/train_job.h"
#include "ps/server.h"

namespace cairn {

using namespace job;  // NOLINT: the launchers' shared pieces

StatusOr<std::shared_ptr<const Secret>> StandaloneSecret(const std::string& flag_file, const std::string& cluster_file,
                                                         bool insecure) {
  const std::string& file = flag_file.empty() ? cluster_file : flag_file;
  if (insecure) {
    if (!flag_file.empty()) return InvalidArgument("--insecure and --secret-file: pick one");
    spdlog::warn("--insecure: no authentication; anyone who can reach the servers can read and change the model");
    return std::shared_ptr<const Secret>();
  }
  if (file.empty()) {
    return FailedPrecondition(
        "a standalone process needs the job's secret: --secret-file PATH or the cluster file's secret_file (make "
        "one with `cairn secret --out PATH` and copy it to every host), or --insecure to run without "
        "authentication");
  }
  return Secret::FromFile(file);
}

Status RunServerProcess(const ClusterSpec& cluster, int index, const std::string& bind, int io_threads,
                        const ServerAuth& auth, const std::string& model_dir, const CrashPoints* crash_points) {
  if (index < 0 || index >= cluster.num_servers()) {
    return InvalidArgument("--index " + std::to_string(index) + ": the cluster has servers 0.." +
                           std::to_string(cluster.num_servers() - 1));
  }
  if (io_threads < 1 || io_threads > 64) {
    return InvalidArgument("--io-threads: must be in [1, 64], got " + std::to_string(io_threads));
  }
  if (!model_dir.empty()) {
    // A mistyped directory must not start the server empty in silence.
    std::error_code ec;
    if (!std::filesystem::is_directory(model_dir, ec)) {
      return NotFound("--model-dir '" + model_dir + "' does not exist or is not a directory (create it first, or " +
                      "leave --model-dir out to start this server empty)");
    }
    RETURN_IF_ERROR(PrepareModelDir(model_dir).WithContext("--model-dir"));  // an empty directory becomes one
  }
  // Block the stop signals in every thread (the loop's inherit this mask);
  // this thread waits for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  const Endpoint& me = cluster.servers[index];
  EventLoop loop(io_threads);
  ServerOptions options;
  options.index = index;
  options.bind_address = bind.empty() ? me.host : bind;
  options.port = me.port;
  options.restore_dir = model_dir;
  options.model_dir = model_dir;
  options.auth = auth;
  options.num_servers = cluster.num_servers();
  options.snapshot.env.crash = crash_points;
  options.cluster = ClusterView(cluster.servers, cluster.num_workers);
  ASSIGN_OR_RETURN(auto server, Server::Start(loop, options));
  spdlog::info("server {} of {} listening on {}", index, cluster.num_servers(), server->endpoint().ToString());
  int signal = 0;
  sigwait(&stop, &signal);
  spdlog::info("server {}: {} received: stopping", index, signal == SIGINT ? "SIGINT" : "SIGTERM");
  server->Stop();
  return Status::OK();
}

StatusOr<JobSummary> RunWorkerProcess(const JobConfig& config, const ClusterSpec& cluster, int index,
                                      const std::atomic<bool>* stop) {
  JobConfig c = config;
  c.cluster.servers = cluster.num_servers();
  c.cluster.workers = cluster.num_workers;
  RETURN_IF_ERROR(ValidateJobConfig(c).WithContext("with the cluster file's servers and workers"));
  if (index < 0 || index >= cluster.num_workers) {
    return InvalidArgument("--index " + std::to_string(index) + ": the cluster has workers 0.." +
                           std::to_string(cluster.num_workers - 1));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<JobData> data, LoadJobData(c));
  if (index == 0) RETURN_IF_ERROR(PrepareSnapshotDir(c));
  EventLoop loop(c.cluster.io_threads);
  spdlog::info("worker {} of {}: servers{}", index, cluster.num_workers, [&] {
    std::string s;
    for (const Endpoint& e : cluster.servers) s += " " + e.ToString();
    return s;
  }());
  const auto start = Clock::now();
  RunControl control;
  control.stop = stop;
  control.wait_for_workers = true;  // nobody else waits for the other processes
  ASSIGN_OR_RETURN(WorkerReport report,
                   RunWorker(c, *data, loop, cluster.servers, index, cluster.num_workers, control));
  if (index != 0) {
    JobSummary mine;
    mine.stopped = report.stopped;
    return mine;
  }
  JobSummary s = NewSummary(c, "standalone", cluster.num_servers(), cluster.num_workers);
  Summarize({report}, std::chrono::duration<double>(Clock::now() - start).count(), &s);
  RETURN_IF_ERROR(AfterTraining(c, *data, loop, cluster.servers, cluster.num_workers, &s));
  // The chief's report counts its own examples; the servers' global step
  // counts every worker's (one per push in async mode, one per round of
  // every worker in sync mode).
  const int64_t pushes = (s.global_step - report.start_global_step) *
                         (c.cluster.consistency == Consistency::kSync ? cluster.num_workers : 1);
  const double seconds = report.end_time - report.start_time;
  if (pushes > 0 && seconds > 0) s.examples_per_sec = static_cast<double>(pushes * c.train.batch_size) / seconds;
  return s;
}

}  // namespace cairn
