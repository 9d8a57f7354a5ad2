#include "launch/job_runner.h"

#include <cmath>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "common/asio_transport.h"
#include "common/snapshot/model_dir.h"
#include "launch/metrics_log.h"
#include "worker/click_examples.h"
#include "worker/criteo_tsv.h"
#include "worker/ps_client.h"
#include "worker/saver.h"

namespace cairn::job {
namespace {

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

SaverOptions JobSaverOptions(const JobConfig& c) {
  SaverOptions o;
  o.model_dir = c.snapshot.model_dir;
  o.retention.max_to_keep = c.snapshot.max_to_keep;
  o.retention.keep_every_n_hours = c.snapshot.keep_every_n_hours;
  o.job_config = c.text;
  o.env.crash = c.snapshot.crash_points.get();
  return o;
}

StatusOr<std::unique_ptr<WorkerContext>> Connect(const JobConfig& c, const JobData& data, EventLoop& loop,
                                                 const std::vector<Endpoint>& servers, int worker, int num_workers) {
  auto w = std::make_unique<WorkerContext>();
  AsioTransportOptions transport_options;
  transport_options.credentials =
      ClientCredentials{c.cluster.secret, worker == 0 ? PeerRole::kChief : PeerRole::kWorker, worker};
  w->transport = std::make_unique<AsioTransport>(loop, servers, transport_options);
  PsClientOptions client_options = ClientOptions(c, worker);
  client_options.cluster = ClusterView(servers, num_workers);
  w->client = std::make_unique<PsClient>(w->transport.get(), client_options);
  w->graph = std::make_unique<Graph>();
  ASSIGN_OR_RETURN(w->model, BuildModel(data.model, c.optimizer.learning_rate, w->graph.get()));
  RETURN_IF_ERROR(AddWorkerStates(num_workers, w->graph.get(), &w->model));
  ASSIGN_OR_RETURN(w->session, Session::Create(w->graph.get(), w->client.get(), JobSessionOptions(c, num_workers)));
  if (Status s = w->session->Initialize(); !s.ok()) {
    if (s.code() != StatusCode::kAlreadyExists) return s;
    // Standalone servers keep a job's variables until they are restarted.
    return s.WithContext(
        "the servers hold variables of another job, declared otherwise (standalone servers keep a job's "
        "variables until they are restarted): restart them (`cairn server`) to run a different job, or give this "
        "one servers of its own");
  }
  if (worker == 0 && !c.snapshot.model_dir.empty()) {
    ASSIGN_OR_RETURN(w->saver, Saver::Create(w->session.get(), w->client.get(), JobSaverOptions(c)));
  }
  return w;
}

// "  pull 12%  push 8%": where a worker's time went, so a user can see who waits.
std::string WaitShares(const TrainProgress& p) {
  if (p.pull_share < 0) return "";
  return fmt::format("  pull {:.0f}%  push {:.0f}%", 100 * p.pull_share, 100 * p.push_share);
}

// Every log_every steps on the other workers (the chief says more, above).
void LogWorkerProgress(int worker, const TrainProgress& p) {
  spdlog::info("worker {}: epoch {}/{}  step {}/{} ({:.0f}%)  loss {:.4f}  global step {}  {:.0f} examples/s{}", worker,
               p.epoch, p.epochs, p.step, p.total_steps, 100.0 * p.step / p.total_steps, p.loss, p.global_step,
               p.examples_per_sec, WaitShares(p));
}

// Each worker's own end, before the job's summary ("done: global step ...").
void LogWorkerDone(int worker, const WorkerReport& r, int64_t batch_size) {
  if (r.examples == 0 && !r.stopped) {
    spdlog::info("worker {}: done: nothing to train (its {} steps were done before this run)", worker, r.steps);
    return;
  }
  const double seconds = r.seconds - r.wait_seconds;  // the chief's wait for the others is not training
  spdlog::info("worker {}: done: {} steps ({} in this run) in {:.2f} s, {:.0f} examples/s, final loss {:.4f}, "
               "{:.2f} s in pulls, {:.2f} s in pushes{}",
               worker, r.steps, r.examples / batch_size, seconds, seconds > 0 ? r.examples / seconds : 0.0,
               r.final_loss, r.pull_seconds, r.push_seconds, r.stopped ? " (stopped on request)" : "");
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

}  // namespace

JobSummary NewSummary(const JobConfig& c, const std::string& mode, int servers, int workers) {
  JobSummary s;
  s.job = c.name;
  s.mode = mode;
  s.authenticated = !c.cluster.insecure && c.cluster.secret != nullptr;
  s.servers = servers;
  s.workers = workers;
  s.batch_size = c.train.batch_size;
  if (mode != "in-process") s.consistency = ConsistencyName(c.cluster.consistency);
  if (mode != "in-process" && c.cluster.consistency == Consistency::kSsp) s.staleness = c.cluster.staleness;
  s.overlap = mode != "in-process" && c.cluster.consistency == Consistency::kAsync && c.train.overlap;
  return s;
}

namespace {

SyntheticClicksOptions ClickOptions(const DataConfig& d) {
  SyntheticClicksOptions o;
  o.seed = d.seed;
  o.rows = d.rows;
  o.test_rows = d.test_limit > 0 ? std::min(d.test_rows, d.test_limit) : d.test_rows;
  o.vocab = d.vocab.empty() ? CriteoKaggleVocab(d.vocab_min, d.vocab_max) : d.vocab;
  o.zipf_exponent = d.zipf_exponent;
  o.int_missing = d.int_missing;
  o.cat_missing = d.cat_missing;
  o.click_rate = d.click_rate;
  return o;
}

StatusOr<std::unique_ptr<ExampleSource>> OpenCriteo(const std::vector<std::string>& paths, const DataConfig& d,
                                                    int64_t limit) {
  CriteoTsvOptions o;
  o.paths = paths;
  o.skip_malformed = d.skip_malformed;
  o.limit = limit;
  ASSIGN_OR_RETURN(std::unique_ptr<CriteoTsv> log, CriteoTsv::Open(o));
  if (log->skipped_lines() > 0) {
    spdlog::warn("data: skipped {} malformed line(s) of {} (the first: {})", log->skipped_lines(), paths.front(),
                 log->first_skipped().ToString());
  }
  return std::unique_ptr<ExampleSource>(std::make_unique<ClickExamples>(std::move(log)));
}

Status LoadClickData(const JobConfig& c, JobData* d) {
  if (c.data.kind == "synthetic_clicks") {
    d->clicks = ClickOptions(c.data);
    ASSIGN_OR_RETURN(auto train, SyntheticClicks::Create(d->clicks, ClickSplit::kTrain));
    d->train_examples = std::make_unique<ClickExamples>(std::move(train));
    if (d->clicks.test_rows > 0) {
      ASSIGN_OR_RETURN(auto test, SyntheticClicks::Create(d->clicks, ClickSplit::kTest));
      d->test_examples = std::make_unique<ClickExamples>(std::move(test));
    }
  } else {
    ASSIGN_OR_RETURN(d->train_examples, OpenCriteo(c.data.paths, c.data, c.data.train_limit));
    if (!c.data.test_paths.empty()) {
      ASSIGN_OR_RETURN(d->test_examples, OpenCriteo(c.data.test_paths, c.data, c.data.test_limit));
    }
  }
  d->model.features = kClickCounts;
  d->model.slots = kClickSlots;
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<JobData>> LoadJobData(const JobConfig& c) {
  // Before the wait, not only after it: reading or generating data can take a while.
  const bool files = c.data.kind == "fashion_mnist" || c.data.kind == "criteo_tsv";
  spdlog::info("data: {} {}{}...", files ? "reading" : RegisteredData(c.data.kind) ? "loading" : "generating", c.data.kind,
               c.data.kind == "fashion_mnist" ? " from " + c.data.dir
               : c.data.kind == "criteo_tsv" && !c.data.paths.empty() ? " from " + c.data.paths.front() +
                                                                            (c.data.paths.size() > 1 ? " and more" : "")
                                                                      : std::string());
  auto d = std::make_unique<JobData>();
  d->model = c.model;
  d->model.workers = c.cluster.workers;
  if (DataFactory factory = RegisteredData(c.data.kind)) {
    StatusOr<DataSources> sources = factory(c.data);
    if (!sources.ok()) return sources.status().WithContext("data.kind " + c.data.kind);
    if (!sources->train) return InvalidArgument("data.kind " + c.data.kind + ": the factory gave no training examples");
    d->train_examples = std::move(sources->train);
    d->test_examples = std::move(sources->test);
    d->model.features = sources->features;
    d->model.slots = sources->slots;
    spdlog::info("data: {} training examples ({}){}", d->train_examples->size(), c.data.kind,
                 d->test_examples ? fmt::format(", {} test examples", d->test_examples->size()) : "");
    return d;
  }
  if (IsClickData(c.data.kind)) {
    RETURN_IF_ERROR(LoadClickData(c, d.get()));
    const int64_t test = d->test_examples ? d->test_examples->size() : 0;
    spdlog::info("data: {} click examples ({}){}", d->train_examples->size(), c.data.kind,
                 test ? fmt::format(", {} test examples", test) : "");
    return d;
  }
  if (c.data.kind == "synthetic_linear") {
    SyntheticLinearOptions o{c.data.examples, c.data.features, c.data.noise_stddev, c.data.seed};
    d->truth = MakeLinearTruth(o);
    d->train = MakeLinearDataset(o, d->truth);
  } else {
    ASSIGN_OR_RETURN(d->train, LoadFashionMnist(c.data.dir, "train", c.data.train_limit));
    ASSIGN_OR_RETURN(d->test, LoadFashionMnist(c.data.dir, "t10k", c.data.test_limit));
  }
  d->model.features = d->train.features;
  d->train_examples = std::make_unique<DatasetExamples>(&d->train);
  if (d->test.examples) d->test_examples = std::make_unique<DatasetExamples>(&d->test);
  spdlog::info("data: {} training examples of {} features{}", d->train.examples, d->train.features,
               d->test.examples ? fmt::format(", {} test examples", d->test.examples) : "");
  return d;
}

Status AddDataMetrics(const JobConfig& c, const JobData& data, JobSummary* s) {
  if (c.data.kind != "synthetic_clicks" || data.clicks.test_rows == 0) return Status::OK();
  ASSIGN_OR_RETURN(s->metrics["bayes_auc"], BayesAuc(data.clicks));
  return Status::OK();
}

SessionOptions JobSessionOptions(const JobConfig& c, int num_workers) {
  SessionOptions o;
  o.optimizer = c.optimizer;
  o.mode.consistency = c.cluster.consistency;
  o.mode.num_workers = num_workers;
  o.mode.sync_timeout_ms = c.cluster.sync_timeout_ms;
  if (c.cluster.consistency == Consistency::kSsp) {
    o.mode.staleness = c.cluster.staleness;
    o.mode.sync_timeout_ms = std::max<int64_t>(1, std::min(c.cluster.sync_timeout_ms, c.cluster.timeout_ms / 2));
  }
  o.mode.missing_workers = c.cluster.missing_workers;
  o.overlap = c.train.overlap;
  o.push_bucket_bytes = c.train.push_bucket_bytes;
  return o;
}

std::string ClusterView(const std::vector<Endpoint>& servers, int num_workers) {
  std::string view = "servers [";
  for (size_t i = 0; i < servers.size(); ++i) view += (i ? ", " : "") + servers[i].ToString();
  return view + "], " + std::to_string(num_workers) + " worker(s)";
}

ServerAuth JobServerAuth(const JobConfig& c) { return ServerAuth{c.cluster.secret, c.cluster.insecure}; }

LocalClusterOptions JobClusterOptions(const JobConfig& c) {
  LocalClusterOptions o;
  o.servers = c.cluster.servers;
  o.bind_address = c.cluster.bind;
  o.snapshot.env.crash = c.snapshot.crash_points.get();
  o.auth = JobServerAuth(c);
  o.model_dir = c.snapshot.model_dir;
  return o;
}

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

TrainerOptions JobTrainerOptions(const JobConfig& c, int worker, int num_workers, const RunControl& control) {
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
  if (worker == c.train.straggler) o.slow_factor = c.train.straggler_factor;
  o.schedule = c.schedule;
  o.snapshot_every_steps = c.snapshot.every_steps;
  o.snapshot_every_secs = c.snapshot.every_secs;
  o.max_recoveries = c.cluster.max_recoveries;
  o.recovery_timeout = std::chrono::milliseconds(c.cluster.timeout_ms);
  return o;
}

void LogProgress(const TrainProgress& p) {
  // The training time beside each evaluation: time to accuracy.
  std::string acc =
      p.test_accuracy >= 0 ? fmt::format("  test accuracy {:.4f} at {:.2f} s", p.test_accuracy, p.seconds) : "";
  if (p.test_auc >= 0) acc = fmt::format("  test auc {:.4f}  test logloss {:.4f}", p.test_auc, p.test_logloss);
  spdlog::info("[chief] epoch {}/{}  step {}/{} ({:.0f}%)  loss {:.4f}  global step {}  {:.0f} examples/s{}{}", p.epoch,
               p.epochs, p.step, p.total_steps, 100.0 * p.step / p.total_steps, p.loss, p.global_step,
               p.examples_per_sec, WaitShares(p), acc);
}

Status AttachMetrics(const JobConfig& c, int worker, Trainer* trainer, Trainer::ProgressFn* progress) {
  if (c.metrics_path.empty()) return Status::OK();
  ASSIGN_OR_RETURN(std::shared_ptr<MetricsLog> log, MetricsLog::ForPath(c.metrics_path));
  *progress = [log, worker, line = std::move(*progress)](const TrainProgress& p) {
    line(p);
    log->Progress(worker, p);
  };
  trainer->set_events([log, worker](const TrainEvent& e) { log->Event(worker, e); });
  return Status::OK();
}

StatusOr<WorkerReport> RunWorker(const JobConfig& c, const JobData& data, EventLoop& loop,
                                 const std::vector<Endpoint>& servers, int worker, int num_workers,
                                 const RunControl& control) {
  ASSIGN_OR_RETURN(auto w, Connect(c, data, loop, servers, worker, num_workers));
  Trainer trainer(w->session.get(), &w->model, data.train_examples.get(),
                  worker == 0 ? data.test_examples.get() : nullptr, JobTrainerOptions(c, worker, num_workers, control));
  trainer.set_saver(w->saver.get());
  trainer.set_client(w->client.get());
  Trainer::ProgressFn progress = LogProgress;
  if (worker != 0) progress = [worker](const TrainProgress& p) { LogWorkerProgress(worker, p); };
  RETURN_IF_ERROR(AttachMetrics(c, worker, &trainer, &progress));
  ASSIGN_OR_RETURN(WorkerReport report, trainer.Run(progress));
  LogWorkerDone(worker, report, c.train.batch_size);
  return report;
}

Status AfterTraining(const JobConfig& c, const JobData& data, EventLoop& loop, const std::vector<Endpoint>& servers,
                     int num_workers, JobSummary* s) {
  ASSIGN_OR_RETURN(auto w, Connect(c, data, loop, servers, 0, num_workers));
  ASSIGN_OR_RETURN(Tensor step, w->session->Run(w->model.global_step));
  s->global_step = step.data<int64_t>()[0];
  RETURN_IF_ERROR(FinalSnapshot(*w, c, s));
  RETURN_IF_ERROR(AddDataMetrics(c, data, s));
  if (c.model.kind != "linear_regression" || c.data.kind != "synthetic_linear") return Status::OK();
  ASSIGN_OR_RETURN(Tensor weights, w->session->Run(w->model.weights));
  if (weights.num_elements() != static_cast<int64_t>(data.truth.w.size())) return Status::OK();
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
    if (r.test_auc >= 0) s->metrics["test_auc"] = r.test_auc;
    if (r.test_logloss >= 0) s->metrics["test_logloss"] = r.test_logloss;
    s->resumed_from = std::max(s->resumed_from, r.resumed_from);
    s->snapshots += r.snapshots;
    s->snapshot_stall_seconds += r.snapshot_stall_seconds;
    s->stopped = s->stopped || r.stopped;
    if (r.pull_seconds > 0 || r.push_seconds > 0) {
      s->worker_times.push_back(JobSummary::WorkerTimes{r.seconds - r.wait_seconds, r.pull_seconds, r.push_seconds});
    }
  }
  const double train_seconds = last_end - first_start;
  s->final_loss = reports.empty() ? 0 : loss / reports.size();
  s->examples = examples;
  s->wall_seconds = wall;
  // Over the training loops only, not data loading or set-up.
  s->examples_per_sec = train_seconds > 0 ? examples / train_seconds : 0;
}

}  // namespace cairn::job
