#include "launch/train_job.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "common/snapshot/model_dir.h"
#include "ps/in_process_store.h"
#include "ps/local_cluster.h"
#include "ps/server.h"
#include "worker/ps_client.h"
#include "worker/saver.h"
#include "worker/session.h"
#include "worker/synthetic_linear.h"
#include "worker/trainer.h"

namespace cairn {
namespace {

JobSummary NewSummary(const JobConfig& c, const std::string& mode, int servers, int workers) {
  JobSummary s;
  s.job = c.name;
  s.mode = mode;
  s.servers = servers;
  s.workers = workers;
  s.batch_size = c.train.batch_size;
  return s;
}

// What a process loads once and its worker threads share, read-only.
struct JobData {
  Dataset train;
  Dataset test;               // empty for synthetic data
  LinearTruth truth;          // synthetic_linear only
  ModelConfig model;          // with features filled in from the data
};

StatusOr<std::unique_ptr<JobData>> LoadJobData(const JobConfig& c) {
  auto d = std::make_unique<JobData>();
  d->model = c.model;
  if (c.data.kind == "synthetic_linear") {
    SyntheticLinearOptions o{c.data.examples, c.data.features, c.data.noise_stddev, c.data.seed};
    d->truth = MakeLinearTruth(o);
    d->train = MakeLinearDataset(o, d->truth);
  } else {
    ASSIGN_OR_RETURN(d->train, LoadFashionMnist(c.data.dir, "train", c.data.train_limit));
    ASSIGN_OR_RETURN(d->test, LoadFashionMnist(c.data.dir, "t10k", c.data.test_limit));
  }
  d->model.features = d->train.features;
  spdlog::info("data: {} training examples of {} features{}", d->train.examples, d->train.features,
               d->test.examples ? fmt::format(", {} test examples", d->test.examples) : "");
  return d;
}

SessionOptions JobSessionOptions(const JobConfig& c, int num_workers) {
  SessionOptions o;
  o.optimizer = c.optimizer;
  o.mode.consistency = c.cluster.consistency;
  o.mode.num_workers = num_workers;
  o.mode.sync_timeout_ms = c.cluster.sync_timeout_ms;
  o.mode.missing_workers = c.cluster.missing_workers;
  return o;
}

// A cluster as a cluster file describes it, compared between processes at
// start-up (HelloRequest::cluster).
std::string ClusterView(const std::vector<Endpoint>& servers, int num_workers) {
  std::string view = "servers [";
  for (size_t i = 0; i < servers.size(); ++i) view += (i ? ", " : "") + servers[i].ToString();
  return view + "], " + std::to_string(num_workers) + " worker(s)";
}

PsClientOptions ClientOptions(const JobConfig& c, int worker) {
  PsClientOptions o;
  o.worker_id = worker;
  o.timeout = std::chrono::milliseconds(c.cluster.timeout_ms);
  o.placement.split_threshold_bytes = c.cluster.split_threshold_bytes;
  return o;
}

// A worker's connection to the cluster: transport, client, graph, session.
struct WorkerContext {
  std::unique_ptr<AsioTransport> transport;
  std::unique_ptr<PsClient> client;
  std::unique_ptr<Graph> graph;
  Model model;
  std::unique_ptr<Session> session;
  std::unique_ptr<Saver> saver;  // the chief's, when the job has a model directory
};

LocalClusterOptions JobClusterOptions(const JobConfig& c) {
  LocalClusterOptions o;
  o.servers = c.cluster.servers;
  o.bind_address = c.cluster.bind;
  o.snapshot.env.crash = c.snapshot.crash_points.get();
  return o;
}

SaverOptions JobSaverOptions(const JobConfig& c) {
  SaverOptions o;
  o.model_dir = c.snapshot.model_dir;
  o.retention.max_to_keep = c.snapshot.max_to_keep;
  o.retention.keep_every_n_hours = c.snapshot.keep_every_n_hours;
  o.job_config = c.text;
  o.env.crash = c.snapshot.crash_points.get();
  return o;
}

// Before any worker starts (chief only): the model directory exists and is
// Cairn's; with --fresh, its snapshots are gone.
Status PrepareSnapshotDir(const JobConfig& c) {
  const std::string& dir = c.snapshot.model_dir;
  if (dir.empty()) return Status::OK();
  if (c.snapshot.fresh && CheckModelDir(dir).ok()) {
    ASSIGN_OR_RETURN(std::vector<SnapshotListing> old, ListSnapshots(dir));
    for (const SnapshotListing& s : old) {
      std::error_code ec;
      std::filesystem::remove(ManifestPath(dir, s.step), ec);
      std::filesystem::remove_all(SnapshotDirPath(dir, s.step), ec);
      if (ec) return Unavailable("--fresh: cannot remove snapshot " + std::to_string(s.step) + ": " + ec.message());
    }
    spdlog::info("--fresh: removed {} snapshot(s) from {}", old.size(), dir);
  }
  return PrepareModelDir(dir);
}

StatusOr<std::unique_ptr<WorkerContext>> Connect(const JobConfig& c, const JobData& data, EventLoop& loop,
                                                 const std::vector<Endpoint>& servers, int worker, int num_workers) {
  auto w = std::make_unique<WorkerContext>();
  w->transport = std::make_unique<AsioTransport>(loop, servers);
  PsClientOptions client_options = ClientOptions(c, worker);
  client_options.cluster = ClusterView(servers, num_workers);
  w->client = std::make_unique<PsClient>(w->transport.get(), client_options);
  w->graph = std::make_unique<Graph>();
  ASSIGN_OR_RETURN(w->model, BuildModel(data.model, c.optimizer.learning_rate, w->graph.get()));
  RETURN_IF_ERROR(AddWorkerStates(num_workers, w->graph.get(), &w->model));
  ASSIGN_OR_RETURN(w->session, Session::Create(w->graph.get(), w->client.get(), JobSessionOptions(c, num_workers)));
  RETURN_IF_ERROR(w->session->Initialize());
  if (worker == 0 && !c.snapshot.model_dir.empty()) {
    ASSIGN_OR_RETURN(w->saver, Saver::Create(w->session.get(), w->client.get(), JobSaverOptions(c)));
  }
  return w;
}

// How a launcher runs its workers' trainers (flags borrowed; null: never set).
struct RunControl {
  const std::atomic<bool>* stop = nullptr;   // stop at the next step boundary (a signal)
  const std::atomic<bool>* abort = nullptr;  // another worker of this process failed
  bool wait_for_workers = false;             // the chief waits for every worker at the end (standalone)
};

TrainerOptions JobTrainerOptions(const JobConfig& c, int worker, int num_workers, const RunControl& control = {}) {
  TrainerOptions o;
  o.stop = control.stop;
  o.abort = control.abort;
  o.wait_for_workers = control.wait_for_workers;
  o.worker_timeout = std::chrono::milliseconds(c.cluster.timeout_ms);
  o.worker = worker;
  o.num_workers = num_workers;
  o.batch_size = c.train.batch_size;
  o.epochs = c.train.epochs;
  o.max_steps = c.train.max_steps;
  o.log_every = c.train.log_every_steps;
  o.seed = c.train.seed;
  o.schedule = c.schedule;
  o.snapshot_every_steps = c.snapshot.every_steps;
  o.snapshot_every_secs = c.snapshot.every_secs;
  o.max_recoveries = c.cluster.max_recoveries;
  o.recovery_timeout = std::chrono::milliseconds(c.cluster.timeout_ms);
  return o;
}

void LogProgress(const TrainProgress& p) {
  std::string acc = p.test_accuracy >= 0 ? fmt::format("  test accuracy {:.4f}", p.test_accuracy) : "";
  spdlog::info("[chief] epoch {}/{}  step {}/{} ({:.0f}%)  loss {:.4f}  global step {}  {:.0f} examples/s{}", p.epoch,
               p.epochs, p.step, p.total_steps, 100.0 * p.step / p.total_steps, p.loss, p.global_step,
               p.examples_per_sec, acc);
}

// Every log_every steps on the other workers (the chief says more, above).
void LogWorkerProgress(int worker, const TrainProgress& p) {
  spdlog::info("worker {}: epoch {}/{}  step {}/{} ({:.0f}%)  loss {:.4f}  global step {}  {:.0f} examples/s", worker,
               p.epoch, p.epochs, p.step, p.total_steps, 100.0 * p.step / p.total_steps, p.loss, p.global_step,
               p.examples_per_sec);
}

// Each worker's own end, before the job's summary ("done: global step ...").
void LogWorkerDone(int worker, const WorkerReport& r, int64_t batch_size) {
  const double seconds = r.seconds - r.wait_seconds;  // the chief's wait for the others is not training
  spdlog::info("worker {}: done: {} steps ({} in this run) in {:.2f} s, {:.0f} examples/s, final loss {:.4f}{}", worker,
               r.steps, r.examples / batch_size, seconds, seconds > 0 ? r.examples / seconds : 0.0, r.final_loss,
               r.stopped ? " (stopped on request)" : "");
}

StatusOr<WorkerReport> RunWorker(const JobConfig& c, const JobData& data, EventLoop& loop,
                                 const std::vector<Endpoint>& servers, int worker, int num_workers,
                                 const RunControl& control = {}) {
  ASSIGN_OR_RETURN(auto w, Connect(c, data, loop, servers, worker, num_workers));
  Trainer trainer(w->session.get(), &w->model, &data.train, worker == 0 && data.test.examples ? &data.test : nullptr,
                  JobTrainerOptions(c, worker, num_workers, control));
  trainer.set_saver(w->saver.get());
  trainer.set_client(w->client.get());
  Trainer::ProgressFn progress = LogProgress;
  if (worker != 0) progress = [worker](const TrainProgress& p) { LogWorkerProgress(worker, p); };
  ASSIGN_OR_RETURN(WorkerReport report, trainer.Run(progress));
  LogWorkerDone(worker, report, c.train.batch_size);
  return report;
}

// After every worker has finished (chief): the final snapshot, unless the
// last periodic one is already at the final step.
Status FinalSnapshot(WorkerContext& w, const JobConfig& c, JobSummary* s) {
  if (!w.saver) return Status::OK();
  ASSIGN_OR_RETURN(Tensor step, w.session->Run(w.model.global_step));
  const int64_t global_step = step.data<int64_t>()[0];
  StatusOr<int64_t> latest = LatestCommittedStep(c.snapshot.model_dir);
  if (!latest.ok() || *latest != global_step) {
    ASSIGN_OR_RETURN(SnapshotStats stats, w.saver->Save(global_step));
    s->snapshot_stall_seconds += stats.copy_seconds;
    ++s->snapshots;
  }
  s->last_snapshot = global_step;
  return Status::OK();
}

// The chief's work once every worker has finished: the final global step
// (the workers' reports hold the value each pulled before its last push, so
// in async mode the servers' count is the true one), the final snapshot and
// the job's own metrics.
Status AfterTraining(const JobConfig& c, const JobData& data, EventLoop& loop, const std::vector<Endpoint>& servers,
                     int num_workers, JobSummary* s) {
  ASSIGN_OR_RETURN(auto w, Connect(c, data, loop, servers, 0, num_workers));
  ASSIGN_OR_RETURN(Tensor step, w->session->Run(w->model.global_step));
  s->global_step = step.data<int64_t>()[0];
  RETURN_IF_ERROR(FinalSnapshot(*w, c, s));
  if (c.model.kind != "linear_regression") return Status::OK();
  ASSIGN_OR_RETURN(Tensor weights, w->session->Run(w->model.weights));
  double dist = 0, norm = 0;
  for (int64_t i = 0; i < weights.num_elements(); ++i) {
    const double d = weights.data<float>()[i] - data.truth.w[i];
    dist += d * d;
    norm += static_cast<double>(data.truth.w[i]) * data.truth.w[i];
  }
  s->metrics["distance_to_true_weights"] = std::sqrt(dist);
  s->metrics["relative_distance_to_true_weights"] = std::sqrt(dist / std::max(norm, 1e-24));
  return Status::OK();
}

void Summarize(const std::vector<WorkerReport>& reports, double wall, JobSummary* s) {
  int64_t examples = 0;
  double loss = 0, first_start = 1e300, last_end = 0;
  for (const WorkerReport& r : reports) {
    s->global_step = std::max(s->global_step, r.global_step);
    examples += r.examples;
    loss += r.final_loss;
    first_start = std::min(first_start, r.start_time);
    last_end = std::max(last_end, r.end_time);
    if (r.test_accuracy >= 0) s->test_accuracy = r.test_accuracy;
    s->resumed_from = std::max(s->resumed_from, r.resumed_from);
    s->snapshots += r.snapshots;
    s->snapshot_stall_seconds += r.snapshot_stall_seconds;
    s->stopped = s->stopped || r.stopped;
  }
  const double train_seconds = last_end - first_start;
  s->final_loss = reports.empty() ? 0 : loss / reports.size();
  s->wall_seconds = wall;
  // Over the training loops only, not data loading or set-up.
  s->examples_per_sec = train_seconds > 0 ? examples / train_seconds : 0;
}

std::string EncodeReport(const WorkerReport& r) {
  return nlohmann::json{{"steps", r.steps},     {"examples", r.examples}, {"global_step", r.global_step},
                        {"loss", r.final_loss}, {"accuracy", r.test_accuracy}, {"seconds", r.seconds},
                        {"start", r.start_time}, {"end", r.end_time}, {"resumed_from", r.resumed_from},
                        {"snapshots", r.snapshots}, {"stall", r.snapshot_stall_seconds}, {"stopped", r.stopped}}
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
  r.seconds = NumberOr(j, "seconds", 0);
  r.start_time = NumberOr(j, "start", 0);
  r.end_time = NumberOr(j, "end", 0);
  r.resumed_from = static_cast<int64_t>(NumberOr(j, "resumed_from", -1));
  r.snapshots = static_cast<int64_t>(NumberOr(j, "snapshots", 0));
  r.snapshot_stall_seconds = NumberOr(j, "stall", 0);
  r.stopped = j.value("stopped", false);
  return r;
}

// Worker threads and MPI ranks report an exception that escaped the layers
// below (std::bad_alloc, say) as a Status: a thread that threw would end
// the process, a rank that threw would leave the others waiting for it.
template <class Fn>
auto CatchExceptions(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Internal("out of memory (std::bad_alloc)");
  } catch (const std::exception& e) {
    return Internal(std::string("unexpected exception: ") + e.what());
  }
}

std::string AdvertisedHost(const ClusterConfig& c) {
  if (!c.advertise.empty()) return c.advertise;
  if (c.bind != "0.0.0.0" && c.bind != "::") return c.bind;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
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
  return j.dump(2);
}

Status WriteSummary(const JobSummary& summary, const std::string& path) {
  std::ofstream out(path);
  if (!out) return NotFound("cannot write summary file '" + path + "'");
  out << summary.ToJson() << "\n";
  if (!out) return DataLoss("failed writing summary file '" + path + "'");
  return Status::OK();
}

StatusOr<JobSummary> RunLocalJob(const JobConfig& c, const std::atomic<bool>* stop) {
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
  ASSIGN_OR_RETURN(Model model, BuildModel(data->model, c.optimizer.learning_rate, &graph));
  ASSIGN_OR_RETURN(auto session, Session::Create(&graph, &store, JobSessionOptions(c, 1)));
  RETURN_IF_ERROR(session->Initialize());
  spdlog::info("in-process: no servers, one worker, optimizer {}", c.optimizer.kind);
  const auto start = Clock::now();
  RunControl control;
  control.stop = stop;
  Trainer trainer(session.get(), &model, &data->train, data->test.examples ? &data->test : nullptr,
                  JobTrainerOptions(c, 0, 1, control));
  ASSIGN_OR_RETURN(WorkerReport report, trainer.Run(LogProgress));
  JobSummary s = NewSummary(c, "in-process", 0, 1);
  Summarize({report}, std::chrono::duration<double>(Clock::now() - start).count(), &s);
  return s;
}

namespace {

StatusOr<JobSummary> RunMpiRank(const JobConfig& c, MpiContext& mpi, const std::atomic<bool>* stop) {
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
    StatusOr<std::unique_ptr<Server>> started = Server::Start(loop, options);
    if (started.ok()) {
      server = std::move(*started);
      my_endpoint = AdvertisedHost(c.cluster) + ":" + std::to_string(server->endpoint().port);
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

StatusOr<ClusterSpec> LoadClusterFile(const std::string& path, std::string* bind) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return InvalidArgument("cluster file '" + path + "': " + e.what());
  }
  auto bad = [&](const std::string& why) { return InvalidArgument("cluster file '" + path + "': " + why); };
  if (!root.IsMap()) return bad("expected a map with 'servers' and 'workers'");
  ClusterSpec spec;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>("");
    if (key != "servers" && key != "workers" && key != "bind") return bad("unknown key '" + key + "'");
  }
  const YAML::Node servers = root["servers"];
  if (!servers || !servers.IsSequence() || servers.size() == 0) return bad("'servers' must be a non-empty list");
  for (const YAML::Node& s : servers) {
    if (!s.IsScalar()) return bad("each server is \"host:port\"");
    StatusOr<Endpoint> e = ParseEndpoint(s.Scalar());
    if (!e.ok()) return bad(e.status().message());
    spec.servers.push_back(*e);
  }
  const YAML::Node workers = root["workers"];
  if (!workers || !workers.IsScalar()) return bad("'workers' must be a number");
  try {
    spec.num_workers = workers.as<int>();
  } catch (const YAML::Exception&) {
    return bad("'workers' must be a number");
  }
  if (spec.num_workers < 1 || spec.num_workers > 1024) return bad("'workers' must be in [1, 1024]");
  if (bind) *bind = root["bind"] ? root["bind"].as<std::string>("") : "";
  return spec;
}

Status RunServerProcess(const ClusterSpec& cluster, int index, const std::string& bind, int io_threads,
                        const std::string& model_dir, const CrashPoints* crash_points) {
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
