// The pieces every launcher (local, in-process, mpirun, standalone) shares:
// the job's data, a worker's run, the chief's work after training, and the
// summary. Internal to launch/.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/cluster_spec.h"
#include "common/event_loop.h"
#include "common/status.h"
#include "launch/job_config.h"
#include "launch/train_job.h"
#include "ps/local_cluster.h"
#include "worker/dataset.h"
#include "worker/example_source.h"
#include "worker/session.h"
#include "worker/synthetic_clicks.h"
#include "worker/synthetic_linear.h"
#include "worker/trainer.h"

namespace cairn::job {

JobSummary NewSummary(const JobConfig& c, const std::string& mode, int servers, int workers);

// What a process loads once and its worker threads share, read-only.
struct JobData {
  Dataset train;              // synthetic_linear, fashion_mnist
  Dataset test;               // fashion_mnist
  LinearTruth truth;          // synthetic_linear only
  SyntheticClicksOptions clicks;  // synthetic_clicks only: the log the job trains and evaluates on
  ModelConfig model;          // with features filled in from the data
  // What the trainers read: adapters of train and test above, or click logs
  // (worker/click_examples.h). test_examples is null without test data.
  std::unique_ptr<ExampleSource> train_examples;
  std::unique_ptr<ExampleSource> test_examples;
};

StatusOr<std::unique_ptr<JobData>> LoadJobData(const JobConfig& c);

SessionOptions JobSessionOptions(const JobConfig& c, int num_workers);

// A cluster as a cluster file describes it, compared between processes at
// start-up (HelloRequest::cluster).
std::string ClusterView(const std::vector<Endpoint>& servers, int num_workers);

LocalClusterOptions JobClusterOptions(const JobConfig& c);
// The servers' side of the job's authentication (its secret, or insecure).
ServerAuth JobServerAuth(const JobConfig& c);

// Before any worker starts (chief only): the model directory exists and is
// Cairn's; with --fresh, its snapshots are gone.
Status PrepareSnapshotDir(const JobConfig& c);

// How a launcher runs its workers' trainers (flags borrowed; null: never set).
struct RunControl {
  const std::atomic<bool>* stop = nullptr;   // stop at the next step boundary (a signal)
  const std::atomic<bool>* abort = nullptr;  // another worker of this process failed
  bool wait_for_workers = false;             // the chief waits for every worker at the end (standalone)
};

TrainerOptions JobTrainerOptions(const JobConfig& c, int worker, int num_workers, const RunControl& control = {});

// The chief's progress line.
void LogProgress(const TrainProgress& p);

// With c.metrics_path: `progress` also writes each report to that metrics
// file, and the trainer's events go there too (launch/metrics_log.h).
Status AttachMetrics(const JobConfig& c, int worker, Trainer* trainer, Trainer::ProgressFn* progress);

// Connects worker `worker` of `num_workers` to `servers` and trains it.
StatusOr<WorkerReport> RunWorker(const JobConfig& c, const JobData& data, EventLoop& loop,
                                 const std::vector<Endpoint>& servers, int worker, int num_workers,
                                 const RunControl& control = {});

// The chief's work once every worker has finished: the final global step
// (the workers' reports hold the value each pulled before its last push, so
// in async mode the servers' count is the true one), the final snapshot and
// the job's own metrics.
Status AfterTraining(const JobConfig& c, const JobData& data, EventLoop& loop, const std::vector<Endpoint>& servers,
                     int num_workers, JobSummary* s);

// The data's own figures (synthetic_clicks: bayes_auc, the planted model's
// AUC on the test examples the job evaluates on).
Status AddDataMetrics(const JobConfig& c, const JobData& data, JobSummary* s);

// The summary's figures from the workers' reports.
void Summarize(const std::vector<WorkerReport>& reports, double wall, JobSummary* s);

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

}  // namespace cairn::job
