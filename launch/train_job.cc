#include "launch/train_job.h"

#include <unistd.h>

#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "launch/local_cluster.h"
#include "ps/server.h"
#include "worker/ps_client.h"

namespace cairn {
namespace {

LinearProblemOptions ProblemOptions(const JobConfig& c) {
  return LinearProblemOptions{c.data.examples, c.data.features, c.data.noise_stddev, c.data.seed};
}

StatusOr<Placement> JobPlacement(const JobConfig& c, int servers) {
  return Placement::Compute(LinearVariables(c.data.features), servers,
                            PlacementOptions{c.cluster.split_threshold_bytes});
}

PsClientOptions ClientOptions(const JobConfig& c, int worker) {
  return PsClientOptions{worker, std::chrono::milliseconds(c.cluster.timeout_ms)};
}

// One worker's whole life: build its data shard, declare the variables
// (idempotent: every worker may), train.
StatusOr<WorkerReport> RunWorker(const JobConfig& c, EventLoop& loop, const std::vector<Endpoint>& servers, int worker,
                                 int num_workers) {
  ASSIGN_OR_RETURN(Placement placement, JobPlacement(c, static_cast<int>(servers.size())));
  AsioTransport transport(loop, servers);
  PsClient client(&transport, std::move(placement), ClientOptions(c, worker));
  const LinearProblemOptions problem = ProblemOptions(c);
  const LinearTruth truth = MakeLinearTruth(problem);
  const LinearShard shard = MakeLinearShard(problem, truth, worker, num_workers);
  RETURN_IF_ERROR(client.CreateVariables(c.optimizer));

  LinearTrainOptions train{c.train.batch_size, c.train.epochs, c.train.max_steps, c.train.seed, worker};
  const auto start = Clock::now();
  auto progress = [&](const TrainProgress& p) {
    if (worker != 0) return;
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    spdlog::info("[chief] step {}/{} ({:.0f}%)  loss {:.6f}  {:.0f} steps/s  {:.0f} examples/s", p.step, p.total_steps,
                 100.0 * p.step / p.total_steps, p.loss, p.step / secs, p.step * c.train.batch_size / secs);
  };
  return TrainLinearRegression(client, shard, train, c.train.log_every_steps, progress);
}

Status AddJobMetrics(const JobConfig& c, EventLoop& loop, const std::vector<Endpoint>& servers, JobSummary* s) {
  ASSIGN_OR_RETURN(Placement placement, JobPlacement(c, static_cast<int>(servers.size())));
  AsioTransport transport(loop, servers);
  PsClient client(&transport, std::move(placement), ClientOptions(c, 0));
  ASSIGN_OR_RETURN(LinearDistance d, DistanceToTruth(client, MakeLinearTruth(ProblemOptions(c))));
  s->metrics["distance_to_true_weights"] = d.weight_distance;
  s->metrics["relative_distance_to_true_weights"] = d.relative_distance;
  s->metrics["bias_error"] = d.bias_error;
  return Status::OK();
}

void Summarize(const std::vector<WorkerReport>& reports, double wall, JobSummary* s) {
  int64_t examples = 0;
  double loss = 0, first_start = 1e300, last_end = 0;
  for (const WorkerReport& r : reports) {
    s->global_step += r.steps;
    examples += r.examples;
    loss += r.final_loss;
    first_start = std::min(first_start, r.start_time);
    last_end = std::max(last_end, r.end_time);
  }
  const double train_seconds = last_end - first_start;
  s->final_loss = reports.empty() ? 0 : loss / reports.size();
  s->wall_seconds = wall;
  // Over the training loops only, not data generation or set-up.
  s->examples_per_sec = train_seconds > 0 ? examples / train_seconds : 0;
}

std::string EncodeReport(const WorkerReport& r) {
  return nlohmann::json{{"steps", r.steps},     {"examples", r.examples},     {"loss", r.final_loss},
                        {"seconds", r.seconds}, {"start", r.start_time}, {"end", r.end_time}}
      .dump();
}

WorkerReport DecodeReport(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  return WorkerReport{j["steps"].get<int64_t>(), j["examples"].get<int64_t>(), j["loss"].get<double>(),
                      j["seconds"].get<double>(), j["start"].get<double>(), j["end"].get<double>()};
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
                   {"global_step", global_step},
                   {"final_loss", final_loss},
                   {"wall_seconds", wall_seconds},
                   {"examples_per_sec", examples_per_sec},
                   {"metrics", metrics}};
  return j.dump(2);
}

Status WriteSummary(const JobSummary& summary, const std::string& path) {
  std::ofstream out(path);
  if (!out) return NotFound("cannot write summary file '" + path + "'");
  out << summary.ToJson() << "\n";
  if (!out) return DataLoss("failed writing summary file '" + path + "'");
  return Status::OK();
}

StatusOr<JobSummary> RunLocalJob(const JobConfig& c) {
  EventLoop loop(2);
  ASSIGN_OR_RETURN(auto cluster, LocalCluster::Start(loop, LocalClusterOptions{c.cluster.servers, c.cluster.bind, {}}));
  const std::vector<Endpoint> endpoints = cluster->endpoints();
  std::string listing;
  for (const Endpoint& e : endpoints) listing += " " + e.ToString();
  spdlog::info("local cluster: {} server(s) on{}, {} worker(s)", c.cluster.servers, listing, c.cluster.workers);

  const int workers = c.cluster.workers;
  std::vector<StatusOr<WorkerReport>> results(workers, Status(Internal("worker did not run")));
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] { results[w] = RunWorker(c, loop, endpoints, w, workers); });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<WorkerReport> reports;
  for (int w = 0; w < workers; ++w) {
    if (!results[w].ok()) return results[w].status().WithContext("worker " + std::to_string(w));
    reports.push_back(*results[w]);
  }
  JobSummary s{c.name, "local", c.cluster.servers, workers};
  Summarize(reports, wall, &s);
  RETURN_IF_ERROR(AddJobMetrics(c, loop, endpoints, &s));
  return s;
}

StatusOr<JobSummary> RunMpiJob(const JobConfig& c, MpiContext& mpi) {
  const int servers = c.cluster.servers;
  const int workers = mpi.size() - servers;
  if (workers < 1) {
    return InvalidArgument("mpirun started " + std::to_string(mpi.size()) + " rank(s) but --servers is " +
                           std::to_string(servers) + ": need at least " + std::to_string(servers + 1) +
                           " (use -np " + std::to_string(servers + c.cluster.workers) + ")");
  }
  const bool is_server = mpi.rank() < servers;
  EventLoop loop(2);
  std::unique_ptr<Server> server;
  std::string my_endpoint;
  Status local_error;
  if (is_server) {
    StatusOr<std::unique_ptr<Server>> started =
        Server::Start(loop, ServerOptions{mpi.rank(), c.cluster.bind, 0, {}});
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
    if (!all[r].empty() && all[r][0] == '!') return Unavailable("server rank " + std::to_string(r) + ": " + all[r].substr(1));
    ASSIGN_OR_RETURN(Endpoint e, ParseEndpoint(all[r]));
    endpoints.push_back(e);
  }
  RETURN_IF_ERROR(mpi.Barrier());  // every server is listening

  const auto start = Clock::now();
  std::string report_text;
  if (!is_server) {
    const int worker = mpi.rank() - servers;
    StatusOr<WorkerReport> r = RunWorker(c, loop, endpoints, worker, workers);
    report_text = r.ok() ? EncodeReport(*r) : "!" + r.status().ToString();
  }
  ASSIGN_OR_RETURN(std::vector<std::string> reports_text, mpi.AllgatherStrings(report_text));
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();

  JobSummary s{c.name, "mpirun", servers, workers};
  Status result;
  std::vector<WorkerReport> reports;
  for (int r = servers; r < mpi.size(); ++r) {
    if (!reports_text[r].empty() && reports_text[r][0] == '!') {
      result = Internal("worker rank " + std::to_string(r) + ": " + reports_text[r].substr(1));
      break;
    }
    reports.push_back(DecodeReport(reports_text[r]));
  }
  const bool chief = mpi.rank() == servers;
  if (result.ok() && chief) {
    Summarize(reports, wall, &s);
    result = AddJobMetrics(c, loop, endpoints, &s);
  }
  RETURN_IF_ERROR(mpi.Barrier());  // the chief has read the final weights
  if (server) server->Stop();
  RETURN_IF_ERROR(result);
  return chief ? s : JobSummary{};
}

}  // namespace cairn
