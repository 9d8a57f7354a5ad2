#include "launch/train_job.h"

#include <unistd.h>

#include <fstream>
#include <limits>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/event_loop.h"
#include "common/kernels/cpu_level.h"
#include "launch/advertise.h"
#include "launch/job_runner.h"
#include "launch/metrics_log.h"
#include "ps/in_process_store.h"
#include "ps/local_cluster.h"
#include "ps/server.h"

namespace cairn {
namespace {

using namespace job;  // NOLINT: the launchers' shared pieces

std::string EncodeReport(const WorkerReport& r) {
  return nlohmann::json{{"steps", r.steps},     {"examples", r.examples}, {"global_step", r.global_step},
                        {"loss", r.final_loss}, {"accuracy", r.test_accuracy}, {"auc", r.test_auc},
                        {"logloss", r.test_logloss}, {"seconds", r.seconds},
                        {"start", r.start_time}, {"end", r.end_time}, {"resumed_from", r.resumed_from},
                        {"snapshots", r.snapshots}, {"stall", r.snapshot_stall_seconds}, {"stopped", r.stopped},
                        {"pull_seconds", r.pull_seconds}, {"push_seconds", r.push_seconds}}
      .dump();
}

// A diverged loss is NaN, which JSON writes as null: read it back as NaN.
double NumberOr(const nlohmann::json& j, const char* key, double fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

StatusOr<WorkerReport> DecodeReport(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss("a worker's report is not valid JSON: " + text);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  WorkerReport r;
  r.steps = static_cast<int64_t>(NumberOr(j, "steps", 0));
  r.examples = static_cast<int64_t>(NumberOr(j, "examples", 0));
  r.global_step = static_cast<int64_t>(NumberOr(j, "global_step", 0));
  r.final_loss = NumberOr(j, "loss", nan);
  r.test_accuracy = NumberOr(j, "accuracy", -1);
  r.test_auc = NumberOr(j, "auc", -1);
  r.test_logloss = NumberOr(j, "logloss", -1);
  r.seconds = NumberOr(j, "seconds", 0);
  r.start_time = NumberOr(j, "start", 0);
  r.end_time = NumberOr(j, "end", 0);
  r.resumed_from = static_cast<int64_t>(NumberOr(j, "resumed_from", -1));
  r.snapshots = static_cast<int64_t>(NumberOr(j, "snapshots", 0));
  r.snapshot_stall_seconds = NumberOr(j, "stall", 0);
  r.stopped = j.value("stopped", false);
  r.pull_seconds = NumberOr(j, "pull_seconds", 0);
  r.push_seconds = NumberOr(j, "push_seconds", 0);
  return r;
}

}  // namespace

std::string JobSummary::ToJson() const {
  nlohmann::json j{{"job", job},
                   {"mode", mode},
                   {"servers", servers},
                   {"workers", workers},
                   {"batch_size", batch_size},
                   {"global_step", global_step},
                   {"final_loss", final_loss},
                   {"wall_seconds", wall_seconds},
                   {"examples_per_sec", examples_per_sec},
                   {"metrics", metrics}};
  if (resumed_from >= 0) j["resumed_from_step"] = resumed_from;
  if (last_snapshot >= 0) {
    j["snapshots"] = snapshots;
    j["last_snapshot_step"] = last_snapshot;
    j["snapshot_stall_seconds"] = snapshot_stall_seconds;
  }
  if (test_accuracy >= 0) j["test_accuracy"] = test_accuracy;
  if (stopped) j["stopped"] = true;
  if (mode != "in-process") j["authenticated"] = authenticated;
  j["consistency"] = consistency;
  if (staleness >= 0) j["staleness"] = staleness;
  if (mode != "in-process") j["overlap"] = overlap;
  if (!worker_times.empty()) {
    j["workers_time"] = nlohmann::json::array();
    for (size_t w = 0; w < worker_times.size(); ++w) {
      const WorkerTimes& t = worker_times[w];
      j["workers_time"].push_back(
          {{"worker", w}, {"seconds", t.seconds}, {"pull_seconds", t.pull_seconds}, {"push_seconds", t.push_seconds}});
    }
  }
  j["cpu_level"] = CpuLevelName(ActiveCpuLevel());  // this process's kernels (common/kernels/cpu_level.h)
  return j.dump(2);
}

Status WriteSummary(const JobSummary& summary, const std::string& path) {
  std::ofstream out(path);
  if (!out) return NotFound("cannot write summary file '" + path + "'");
  out << summary.ToJson() << "\n";
  if (!out) return DataLoss("failed writing summary file '" + path + "'");
  return Status::OK();
}

StatusOr<JobSummary> RunLocalJob(const JobConfig& config, const std::atomic<bool>* stop) {
  JobConfig c = config;
  if (!c.cluster.insecure && !c.cluster.secret) {
    ASSIGN_OR_RETURN(c.cluster.secret, Secret::Generate());  // in memory: the threads of this process share it
  }
  ASSIGN_OR_RETURN(std::unique_ptr<JobData> data, LoadJobData(c));
  EventLoop loop(c.cluster.io_threads);
  ASSIGN_OR_RETURN(auto cluster, LocalCluster::Start(loop, JobClusterOptions(c)));
  const std::vector<Endpoint> endpoints = cluster->endpoints();
  std::string listing;
  for (const Endpoint& e : endpoints) listing += " " + e.ToString();
  const int workers = c.cluster.workers;
  spdlog::info("local cluster: {} server(s) on{}, {} worker(s), {} training, optimizer {}", c.cluster.servers, listing,
               workers, ConsistencyName(c.cluster.consistency), c.optimizer.kind);

  RETURN_IF_ERROR(PrepareSnapshotDir(c));
  std::vector<StatusOr<WorkerReport>> results(workers, Status(Internal("worker did not run")));
  // The first worker to fail ends the others' waits and training (they
  // would wait for it, or train on for a job that has failed). The job's
  // error is the chief's own (the others' often follow from it: "the chief
  // failed to start"), else the first one's.
  std::atomic<bool> abort{false};
  std::mutex first_error_mu;
  Status first_error;
  RunControl control;
  control.stop = stop;
  control.abort = &abort;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      results[w] = CatchExceptions([&] { return RunWorker(c, *data, loop, endpoints, w, workers, control); });
      if (results[w].ok()) return;
      std::lock_guard<std::mutex> lock(first_error_mu);
      if (first_error.ok()) first_error = results[w].status().WithContext("worker " + std::to_string(w));
      abort = true;
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  if (!results[0].ok() && results[0].status().code() != StatusCode::kCancelled) {
    return results[0].status().WithContext("worker 0");
  }
  RETURN_IF_ERROR(first_error);

  std::vector<WorkerReport> reports;
  for (int w = 0; w < workers; ++w) reports.push_back(*results[w]);
  JobSummary s = NewSummary(c, "local", c.cluster.servers, workers);
  Summarize(reports, wall, &s);
  RETURN_IF_ERROR(AfterTraining(c, *data, loop, endpoints, workers, &s));
  return s;
}

StatusOr<JobSummary> RunInProcessJob(const JobConfig& c, const std::atomic<bool>* stop) {
  ASSIGN_OR_RETURN(std::unique_ptr<JobData> data, LoadJobData(c));
  InProcessStore store;
  Graph graph;
  data->model.workers = 1;
  ASSIGN_OR_RETURN(Model model, BuildModel(data->model, c.optimizer.learning_rate, &graph));
  ASSIGN_OR_RETURN(auto session, Session::Create(&graph, &store, JobSessionOptions(c, 1)));
  RETURN_IF_ERROR(session->Initialize());
  spdlog::info("in-process: no servers, one worker, optimizer {}", c.optimizer.kind);
  const auto start = Clock::now();
  RunControl control;
  control.stop = stop;
  Trainer trainer(session.get(), &model, data->train_examples.get(), data->test_examples.get(),
                  JobTrainerOptions(c, 0, 1, control));
  Trainer::ProgressFn progress = LogProgress;
  RETURN_IF_ERROR(AttachMetrics(c, 0, &trainer, &progress));
  ASSIGN_OR_RETURN(WorkerReport report, trainer.Run(progress));
  JobSummary s = NewSummary(c, "in-process", 0, 1);
  Summarize({report}, std::chrono::duration<double>(Clock::now() - start).count(), &s);
  RETURN_IF_ERROR(AddDataMetrics(c, *data, &s));
  return s;
}

namespace {

StatusOr<JobSummary> RunMpiRank(const JobConfig& config, MpiContext& mpi, const std::atomic<bool>* stop) {
  JobConfig c = config;
  if (!c.cluster.insecure && !c.cluster.secret) {
    // Rank 0 makes the job's secret and MPI hands it to every rank.
    std::string bytes;
    if (mpi.rank() == 0) {
      ASSIGN_OR_RETURN(std::shared_ptr<const Secret> made, Secret::Generate());
      bytes = made->bytes();
    }
    RETURN_IF_ERROR(mpi.Broadcast(0, Secret::kMinBytes, &bytes));
    ASSIGN_OR_RETURN(c.cluster.secret, Secret::FromBytes(std::move(bytes)));
  }
  const int servers = c.cluster.servers;
  const int workers = mpi.size() - servers;
  if (workers < 1) {
    return InvalidArgument("mpirun started " + std::to_string(mpi.size()) + " rank(s) but --servers is " +
                           std::to_string(servers) + ": need at least " + std::to_string(servers + 1) +
                           " (use -np " + std::to_string(servers + c.cluster.workers) + ")");
  }
  const bool is_server = mpi.rank() < servers;
  std::unique_ptr<JobData> data;
  if (!is_server) {
    ASSIGN_OR_RETURN(data, LoadJobData(c));
  }
  EventLoop loop(c.cluster.io_threads);
  std::unique_ptr<Server> server;
  std::string my_endpoint;
  Status local_error;
  if (is_server) {
    ServerOptions options;
    options.index = mpi.rank();
    options.bind_address = c.cluster.bind;
    options.snapshot.env.crash = c.snapshot.crash_points.get();
    options.auth = JobServerAuth(c);
    options.model_dir = c.snapshot.model_dir;
    StatusOr<std::unique_ptr<Server>> started = Server::Start(loop, options);
    if (started.ok()) {
      server = std::move(*started);
      StatusOr<std::string> host =
          AdvertisedHost(c.cluster.advertise, c.cluster.bind, mpi.rank(), c.cluster.servers);
      if (host.ok()) {
        my_endpoint = *host + ":" + std::to_string(server->endpoint().port);
      } else {
        local_error = host.status();
        my_endpoint = "!" + local_error.ToString();
      }
      spdlog::info("rank {} on {}: server {} listening on {}", mpi.rank(), mpi.processor_name(), mpi.rank(),
                   my_endpoint);
    } else {
      local_error = started.status();
      my_endpoint = "!" + local_error.ToString();
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> all, mpi.AllgatherStrings(my_endpoint));
  std::vector<Endpoint> endpoints;
  for (int r = 0; r < servers; ++r) {
    if (!all[r].empty() && all[r][0] == '!') {
      return Unavailable("server rank " + std::to_string(r) + ": " + all[r].substr(1));
    }
    ASSIGN_OR_RETURN(Endpoint e, ParseEndpoint(all[r]));
    endpoints.push_back(e);
  }
  if (mpi.rank() == servers) RETURN_IF_ERROR(PrepareSnapshotDir(c));  // the chief, before any worker starts
  RETURN_IF_ERROR(mpi.Barrier());  // every server is listening

  const auto start = Clock::now();
  std::string report_text;
  if (!is_server) {
    const int worker = mpi.rank() - servers;
    RunControl control;
    control.stop = stop;
    if (!c.metrics_path.empty()) c.metrics_path = MetricsLog::WorkerPath(c.metrics_path, worker);
    StatusOr<WorkerReport> r = RunWorker(c, *data, loop, endpoints, worker, workers, control);
    report_text = r.ok() ? EncodeReport(*r) : "!" + r.status().ToString();
  }
  if (mpi.rank() == servers) spdlog::info("[chief] done with its steps: waiting for every rank to finish");
  ASSIGN_OR_RETURN(std::vector<std::string> reports_text, mpi.AllgatherStrings(report_text));
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();

  JobSummary s = NewSummary(c, "mpirun", servers, workers);
  Status result;
  std::vector<WorkerReport> reports;
  for (int r = servers; r < mpi.size(); ++r) {
    if (!reports_text[r].empty() && reports_text[r][0] == '!') {
      result = Internal("worker rank " + std::to_string(r) + ": " + reports_text[r].substr(1));
      break;
    }
    StatusOr<WorkerReport> report = DecodeReport(reports_text[r]);
    if (!report.ok()) {
      result = report.status().WithContext("worker rank " + std::to_string(r));
      break;
    }
    reports.push_back(*report);
  }
  const bool chief = mpi.rank() == servers;
  if (result.ok() && chief) {
    Summarize(reports, wall, &s);
    result = AfterTraining(c, *data, loop, endpoints, workers, &s);
  }
  RETURN_IF_ERROR(mpi.Barrier());  // the chief has read the final weights
  if (server) server->Stop();
  RETURN_IF_ERROR(result);
  if (chief) return s;
  JobSummary others;
  for (const WorkerReport& r : reports) others.stopped = others.stopped || r.stopped;
  return others;
}

}  // namespace

StatusOr<JobSummary> RunMpiJob(const JobConfig& c, MpiContext& mpi, const std::atomic<bool>* stop) {
  return CatchExceptions([&] { return RunMpiRank(c, mpi, stop); });
}

}  // namespace cairn
