// Trainer: the training loop one worker runs.
//
// Every worker pulls, computes gradients and pushes, step after step, over
// its share of the data. The chief (worker 0) also prepares what training
// needs before the others start (the classifiers' normalization statistics),
// keeps the learning_rate variable on its schedule, and evaluates test
// accuracy at the end of every epoch.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <future>
#include <set>
#include <string>

#include "common/status.h"
#include "worker/dataset.h"
#include "worker/example_source.h"
#include "worker/model.h"
#include "worker/ps_client.h"
#include "worker/saver.h"
#include "worker/session.h"

namespace cairn {

struct LearningRateSchedule {
  std::string kind = "constant";  // constant | step | exponential
  double base = 0.01;
  double decay_rate = 0.5;        // step, exponential
  int64_t decay_steps = 1000;     // in global steps
  // The rate at `global_step`: base, base·rate^floor(s/steps), base·rate^(s/steps).
  double Rate(int64_t global_step) const;
};

struct TrainerOptions {
  int worker = 0;
  int num_workers = 1;
  int64_t batch_size = 64;
  int64_t epochs = 1;
  int64_t max_steps = 0;            // per worker; 0: no cap
  int64_t log_every = 100;          // progress every N steps (and at the last; the chief also at epoch ends)
  // > 1: after each step this worker sleeps (slow_factor - 1) x the step's
  // time, to run slow_factor times slower (benchmarks: a straggler).
  double slow_factor = 1.0;
  uint64_t seed = 1;                // data shuffling
  LearningRateSchedule schedule;
  // How long a worker waits for the chief's start-up (logging every few
  // seconds). A chief whose start-up fails says so through cairn/chief_ready
  // (ChiefWord::kFailed) and the wait ends at once; this bounds a chief that
  // died without a word.
  std::chrono::milliseconds ready_timeout{300000};
  // The chief, in async mode, once its own steps are done: wait until every
  // other worker's state (cairn/worker_state/<i>) says it ran its last step,
  // so that what follows (the final snapshot, the summary) holds every
  // worker's work. For launchers that do not wait for the workers
  // themselves (standalone processes; --local joins its threads and mpirun
  // gathers the ranks' reports). In sync mode the chief's last round holds
  // every live worker's last push, so there is nothing to wait for. A worker
  // whose state does not move for worker_timeout is missing: with
  // missing_workers "continue" the chief goes on without it, with "fail"
  // the run fails naming it. A worker whose position lives on a server
  // that restarted during the run (from a snapshot, losing the updates
  // since, its position's among them) is not waited for: its state can no
  // longer say whether it finished.
  bool wait_for_workers = false;
  std::chrono::milliseconds worker_timeout{300000};
  // Set (from another thread; launch/ sets it on SIGINT or SIGTERM) to end
  // training early: the trainer finishes the step in flight and returns its
  // report with `stopped` set, as if its last step were done. In async mode
  // each worker stops at its own next step boundary. In sync mode a round
  // needs every worker, so the chief, on seeing the flag, picks the global
  // step every worker stops at and says it through cairn/chief_ready
  // (ChiefWord::kStopAt); the others stop there, not at their own flag.
  // Borrowed; may be null.
  const std::atomic<bool>* stop = nullptr;
  // Set (from another thread) when another worker of this process failed
  // (--local): the trainer gives up at its next step or wait check
  // (Cancelled) instead of training on or waiting for a worker that is gone.
  // Borrowed; may be null.
  const std::atomic<bool>* abort = nullptr;
  // Chief, with a Saver (set_saver): resume from the newest committed
  // snapshot, and snapshot every N global steps and/or S seconds (0: off).
  bool restore = true;
  int64_t snapshot_every_steps = 0;
  double snapshot_every_secs = 0;
  // Recovery (with a PsClient, set_client): in sync mode, a step aborted
  // because a server restarted from a snapshot (or the chief rolled the
  // cluster back) makes the chief restore every server to the newest
  // committed snapshot and every worker continue from its position there,
  // at most max_recoveries times per run; others wait up to
  // recovery_timeout for the rollback.
  int max_recoveries = 10;
  std::chrono::milliseconds recovery_timeout{300000};
};

struct TrainProgress {
  int64_t epoch = 0;         // 1-based, of epochs
  int64_t epochs = 0;
  int64_t step = 0;          // this worker's steps so far
  int64_t total_steps = 0;
  int64_t global_step = 0;   // steps applied across the cluster
  double loss = 0;           // mean over the steps since the last report
  double examples_per_sec = 0;
  double seconds = 0;        // this run's training time so far, evaluations left out
  // With servers: this run's time in pulls (ssp: waiting for stragglers
  // included) and pushes (sync: waiting for the step included) so far, as
  // shares of its training time; -1 without servers.
  double pull_share = -1, push_share = -1;
  double learning_rate = 0;  // the schedule's rate at this global step
  double test_accuracy = -1; // set on the chief's epoch-end reports (classifiers)
  double test_auc = -1;      // likewise, click models
  double test_logloss = -1;
};

// Something that happened to a training run besides its steps (a metrics
// file records them beside the progress).
struct TrainEvent {
  // "snapshot" (the chief began one: seconds = the training stall),
  // "snapshot_committed", "snapshot_failed", "recovered" (seconds = how
  // long the recovery took), "server_restarted".
  std::string kind;
  int64_t global_step = 0;
  int64_t snapshot_step = -1;  // the snapshot it concerns, or that a recovery rolled back to
  double seconds = 0;
  std::string detail;          // an error, a server index
};

// A model's figures over a test set.
struct Evaluation {
  double loss = 0;       // mean over the examples (click models: the log loss)
  double accuracy = -1;  // classifiers
  double auc = -1;       // click models
};

struct WorkerReport {
  int64_t steps = 0;
  int64_t examples = 0;
  int64_t global_step = 0;
  double final_loss = 0;      // mean over the last reporting window
  double test_accuracy = -1;  // chief with test data; -1 otherwise
  double test_auc = -1;       // likewise, click models
  double test_logloss = -1;
  double seconds = 0;         // the training loop, less test evaluation
  double eval_seconds = 0;    // spent evaluating on test data (chief)
  double start_time = 0;      // wall clock (seconds since the epoch)
  double end_time = 0;
  int64_t resumed_from = -1;  // the snapshot step this run continued from (-1: none)
  int64_t recoveries = 0;     // rollbacks to a snapshot during the run (sync mode)
  int64_t steps_rolled_back = 0;  // this worker's steps redone after them
  int64_t snapshots = 0;      // snapshots committed (chief)
  int64_t snapshots_failed = 0;  // periodic snapshots that failed (training went on)
  double snapshot_stall_seconds = 0;  // training time spent copying shards for them
  bool stopped = false;           // a stop request (TrainerOptions::stop) ended training early
  int64_t start_global_step = 0;  // the global step this worker's training began at
  double wait_seconds = 0;        // chief, wait_for_workers: spent waiting for the others at the end
  double pull_seconds = 0;        // with servers: this run's time in pulls (ssp: straggler waits included)
  double push_seconds = 0;        // and in pushes (sync: waits for the step's last worker included)
};

class Trainer {
 public:
  using ProgressFn = std::function<void(const TrainProgress&)>;
  using EventFn = std::function<void(const TrainEvent&)>;

  // Borrows everything; `test` may be null (no evaluation).
  Trainer(Session* session, const Model* model, const Dataset* train, const Dataset* test, TrainerOptions options);
  Trainer(Session* session, const Model* model, const ExampleSource* train, const ExampleSource* test,
          TrainerOptions options);

  // The chief's Saver (borrowed; may be null: no snapshots, no resume).
  void set_saver(Saver* saver) { saver_ = saver; }
  // The session's PsClient (borrowed; may be null: no server recovery).
  void set_client(PsClient* client) { client_ = client; }
  // Called on this thread for each TrainEvent (may be empty).
  void set_events(EventFn events) { events_ = std::move(events); }

  // Prepares (chief: restores the newest snapshot, or computes the
  // normalization statistics) or waits for the chief (others), resumes this
  // worker's data position if the servers hold one, then trains.
  StatusOr<WorkerReport> Run(const ProgressFn& progress);

  // Accuracy and mean loss over `data`, in batches, with the current weights.
  StatusOr<std::pair<double, double>> Evaluate(const Dataset& data);
  // The model's figures over `data` (accuracy for classifiers, AUC for
  // click models), in batches, with the current weights.
  StatusOr<Evaluation> Evaluate(const ExampleSource& data);

 private:
  bool chief() const { return options_.worker == 0; }
  Status PrepareAsChief(WorkerReport* report);
  // After PrepareAsChief failed: tells the waiting workers (best effort).
  void PublishChiefFailure();
  StatusOr<bool> ClusterIsLive();
  Status WaitForChief();
  bool aborted() const { return options_.abort && options_.abort->load(); }
  bool stop_requested() const { return options_.stop && options_.stop->load(); }
  // At a step boundary: whether a stop request ends training here (the
  // chief, in sync mode, also picks and publishes the step to stop at).
  StatusOr<bool> StopDue(int64_t global_step, bool sync);
  // cairn/chief_ready := ready (or ready, stopping at stop_at_).
  Status PublishReady();
  // TrainerOptions::wait_for_workers: every worker has run `total` steps.
  Status WaitForWorkers(int64_t total);
  int StateServer(int worker) const;  // the server holding worker's state (-1: unknown)
  Status Aborted() const;
  Status UpdateLearningRate(int64_t global_step);
  // The position this worker left off at, from its state variable.
  Status Resume(ShardIterator* it, int64_t* first_step, int64_t* global_step);
  Tensor StateAfter(int64_t steps, const DataPosition& position) const;
  bool SnapshotDue(int64_t global_step) const;
  Status StartSnapshot(int64_t global_step, WorkerReport* report);
  Status FinishSnapshot(WorkerReport* report);  // waits for the one in flight, if any
  // After `why` (an Aborted step): the cluster back at one snapshot and this
  // worker at its position there.
  Status Recover(const Status& why, ShardIterator* it, int64_t* step, int64_t* global_step, WorkerReport* report);
  // Logs servers that restarted since the last check; in async mode, the
  // steps their shards lost.
  Status NoteServerRestarts(int64_t global_step);

  // The Dataset constructor's adapters (null with the other).
  std::unique_ptr<DatasetExamples> owned_train_, owned_test_;
  Session* const session_;
  const Model* const model_;
  const ExampleSource* const train_;
  const ExampleSource* const test_;
  const TrainerOptions options_;
  double current_rate_ = -1;
  EventFn events_;
  void Note(TrainEvent e) const {
    if (events_) events_(e);
  }
  Saver* saver_ = nullptr;
  PsClient* client_ = nullptr;
  std::future<StatusOr<SnapshotStats>> snapshot_;  // the chief's Finish in flight
  int64_t last_snapshot_step_ = -1;
  int64_t highest_global_step_ = 0;  // the most this worker has seen (for loss reports)
  std::set<int> restarted_servers_;  // servers that restarted during the run
  int64_t stop_at_ = -1;             // sync: the global step every worker stops at (-1: none)
  bool stop_noted_ = false;          // a non-chief in sync mode said it saw its stop flag
  std::chrono::steady_clock::time_point last_snapshot_time_;
};

}  // namespace cairn
