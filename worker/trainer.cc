#include "worker/trainer.h"

#include <cmath>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "worker/auc.h"

namespace cairn {
namespace {

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int64_t Scalar64(const Tensor& t) { return t.data<int64_t>()[0]; }

Tensor Int64Scalar(int64_t v) {
  Tensor t(DType::kInt64, {});
  t.data<int64_t>()[0] = v;
  return t;
}

// How often a wait that is not over says what it waits for.
constexpr std::chrono::seconds kWaitLogPeriod(5);

}  // namespace

double LearningRateSchedule::Rate(int64_t global_step) const {
  const double periods = static_cast<double>(global_step) / static_cast<double>(std::max<int64_t>(1, decay_steps));
  if (kind == "step") return base * std::pow(decay_rate, std::floor(periods));
  if (kind == "exponential") return base * std::pow(decay_rate, periods);
  return base;
}

Trainer::Trainer(Session* session, const Model* model, const Dataset* train, const Dataset* test,
                 TrainerOptions options)
    : owned_train_(std::make_unique<DatasetExamples>(train)),
      owned_test_(test ? std::make_unique<DatasetExamples>(test) : nullptr),
      session_(session),
      model_(model),
      train_(owned_train_.get()),
      test_(owned_test_.get()),
      options_(std::move(options)) {}

Trainer::Trainer(Session* session, const Model* model, const ExampleSource* train, const ExampleSource* test,
                 TrainerOptions options)
    : session_(session), model_(model), train_(train), test_(test), options_(std::move(options)) {}

// A chief that restarted while the servers kept training (or that finds
// every server restored from the same snapshot on its own) rejoins: it must
// not roll a live cluster back. It restores when the model was never
// prepared (fresh servers, as a re-run of the job has) or the servers'
// states disagree.
StatusOr<bool> Trainer::ClusterIsLive() {
  if (!client_) return false;
  ASSIGN_OR_RETURN(Tensor ready, session_->Run(model_->chief_ready));
  if (Scalar64(ready) < ChiefWord::kReady) return false;  // starting, or a start-up that failed
  ASSIGN_OR_RETURN(std::vector<HelloReply> hellos, client_->Hello());
  bool never_restored = true, same_snapshot = true;
  for (const HelloReply& h : hellos) {
    never_restored = never_restored && h.restore_id == 0;
    same_snapshot = same_snapshot && h.restore_id != 0 && h.restored_step == hellos[0].restored_step;
  }
  return never_restored || same_snapshot;
}

Status Trainer::PrepareAsChief(WorkerReport* report) {
  ASSIGN_OR_RETURN(bool live, ClusterIsLive());
  if (live) {
    spdlog::info("[chief] the servers hold a prepared model (they kept training, or restored it themselves): "
                 "rejoining without a restore (a new job on standalone servers that ran one of the same variables "
                 "continues from its values: restart the servers to start afresh)");
    return Status::OK();
  }
  if (saver_ && options_.restore) {
    const std::string& dir = saver_->options().model_dir;
    StatusOr<int64_t> latest = CheckModelDir(dir).ok() ? LatestCommittedStep(dir) : StatusOr<int64_t>(NotFound(""));
    if (latest.ok()) {
      StatusOr<RestoreResult> restored = saver_->Restore();
      if (!restored.ok()) {
        return restored.status().WithContext("resuming from " + dir +
                                             " (--fresh starts over; another --model-dir starts elsewhere)");
      }
      const RestoreResult& r = *restored;
      spdlog::info("[chief] resuming from snapshot {} in {} (global step {})", r.step, dir, r.global_step);
      report->resumed_from = r.step;
      last_snapshot_step_ = r.step;
      return session_->Run(model_->set_chief_ready).status();
    }
    // A directory that exists but is not a model directory is an error
    // (CheckModelDir says why); one that does not exist yet is a fresh start.
    if (Status s = CheckModelDir(dir); !s.ok() && s.code() != StatusCode::kNotFound) return s;
    spdlog::info("[chief] no snapshot in {}: starting from step 0", dir);
  }
  if (model_->mean.valid()) {
    std::vector<float> mean, inv_std;
    RETURN_IF_ERROR(train_->Moments(&mean, &inv_std));
    const int64_t f = static_cast<int64_t>(mean.size());
    FeedMap feeds{{model_->new_mean, Tensor::FromVector({f}, mean)},
                  {model_->new_inv_std, Tensor::FromVector({f}, inv_std)}};
    RETURN_IF_ERROR(session_->Run({model_->set_mean, model_->set_inv_std}, feeds).status());
  }
  return session_->Run(model_->set_chief_ready).status();
}

void Trainer::PublishChiefFailure() {
  Status told = session_->Run(model_->set_chief_word, {{model_->new_chief_word, Int64Scalar(ChiefWord::kFailed)}})
                    .status();
  if (!told.ok()) {
    spdlog::warn("[chief] could not tell the other workers that start-up failed ({}); they wait for it up to {} ms",
                 told.ToString(), options_.ready_timeout.count());
  }
}

Status Trainer::PublishReady() {
  const int64_t word = stop_at_ >= 0 ? ChiefWord::kStopAt + stop_at_ : ChiefWord::kReady;
  return session_->Run(model_->set_chief_word, {{model_->new_chief_word, Int64Scalar(word)}}).status();
}

// Sync: the chief is at the boundary after round g-1 (global_step g). No
// other worker can have finished round g (it needs the chief's push), and
// each reads the chief's word with its pull of round g+1 at the latest
// (that pull follows round g, which follows this assignment). So every
// worker still runs rounds g and g+1, and all stop at global step g + 2.
StatusOr<bool> Trainer::StopDue(int64_t global_step, bool sync) {
  if (!sync) return stop_requested();
  if (stop_requested() && stop_at_ < 0) {
    if (chief()) {
      stop_at_ = global_step + 2;
      RETURN_IF_ERROR(PublishReady());
      spdlog::info("[chief] stop requested: every worker stops at global step {}", stop_at_);
    } else if (!stop_noted_) {
      stop_noted_ = true;
      spdlog::info("worker {}: stop requested: in sync mode every worker stops at the global step the chief picks "
                   "(a standalone job stops when its chief is signalled)",
                   options_.worker);
    }
  }
  return stop_at_ >= 0 && global_step >= stop_at_;
}

Status Trainer::Aborted() const {
  return Cancelled("worker " + std::to_string(options_.worker) + " stopped: another worker of this job failed");
}

Status Trainer::WaitForChief() {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + options_.ready_timeout;
  auto next_log = start + kWaitLogPeriod;
  while (true) {
    ASSIGN_OR_RETURN(Tensor ready, session_->Run(model_->chief_ready));
    const int64_t word = Scalar64(ready);
    if (word >= ChiefWord::kStopAt) stop_at_ = word - ChiefWord::kStopAt;
    if (word >= ChiefWord::kReady) return Status::OK();
    if (word == ChiefWord::kFailed) {
      return FailedPrecondition("worker " + std::to_string(options_.worker) +
                                ": the chief (worker 0) failed to start the job (its log says why)");
    }
    if (aborted()) return Aborted();
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline) {
      return DeadlineExceeded("worker " + std::to_string(options_.worker) + " waited " +
                              std::to_string(options_.ready_timeout.count()) +
                              " ms for the chief (worker 0) to prepare the model");
    }
    if (now >= next_log) {
      spdlog::info("worker {}: waiting for the chief (worker 0) to finish start-up (restore or data statistics) "
                   "... {:.0f} s",
                   options_.worker, std::chrono::duration<double>(now - start).count());
      next_log += kWaitLogPeriod;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

int Trainer::StateServer(int worker) const {
  if (!client_) return -1;
  StatusOr<std::vector<ShardSlice>> slices = client_->placement().SlicesOf(WorkerStateName(worker));
  return slices.ok() && !slices->empty() ? slices->front().server : -1;
}

Status Trainer::WaitForWorkers(int64_t total) {
  const int n = options_.num_workers;
  if (model_->worker_state.size() < static_cast<size_t>(n)) return Status::OK();  // no states to read
  std::vector<Output> states(model_->worker_state.begin() + 1, model_->worker_state.begin() + n);
  const bool give_up_on_missing = session_->options().mode.missing_workers == MissingWorkers::kContinue;
  const auto start = std::chrono::steady_clock::now();
  auto next_log = start;
  // Per worker: the steps its state last said, and when that changed.
  std::vector<int64_t> seen(n, -1);
  std::vector<std::chrono::steady_clock::time_point> moved(n, start);
  std::vector<bool> missing(n, false);
  while (true) {
    RETURN_IF_ERROR(NoteServerRestarts(highest_global_step_));
    ASSIGN_OR_RETURN(std::vector<Tensor> out, session_->Run(states));
    const auto now = std::chrono::steady_clock::now();
    std::string waiting;
    for (int w = 1; w < n; ++w) {
      const int64_t steps = out[w - 1].data<int64_t>()[0];
      if (steps != seen[w]) {
        seen[w] = steps;
        moved[w] = now;
      }
      if (steps >= total || missing[w]) continue;
      if (const int server = StateServer(w); restarted_servers_.count(server)) {
        spdlog::warn("[chief] not waiting for worker {} (its position says step {} of {}): server {}, which holds "
                     "it, restarted during the run and lost the updates since its snapshot",
                     w, steps, total, server);
        missing[w] = true;
        continue;
      }
      if (now - moved[w] > options_.worker_timeout) {
        const std::string what = "worker " + std::to_string(w) + " made no progress for " +
                                 std::to_string(options_.worker_timeout.count()) + " ms (at step " +
                                 std::to_string(steps) + " of " + std::to_string(total) + ")";
        if (!give_up_on_missing) {
          return DeadlineExceeded("[chief] " + what + "; with cluster.missing_workers: continue the chief " +
                                  "finishes without such a worker");
        }
        spdlog::warn("[chief] {}: finishing without its remaining steps (missing_workers: continue)", what);
        missing[w] = true;
        continue;
      }
      waiting += fmt::format("{}worker {} (step {} of {})", waiting.empty() ? "" : ", ", w, steps, total);
    }
    if (waiting.empty()) return Status::OK();
    if (aborted()) return Aborted();
    if (now >= next_log) {
      const double waited = std::chrono::duration<double>(now - start).count();
      spdlog::info("[chief] waiting for {} to finish before the final snapshot and summary{}", waiting,
                   waited >= 1 ? fmt::format(" ... {:.0f} s", waited) : "");
      next_log += kWaitLogPeriod;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status Trainer::UpdateLearningRate(int64_t global_step) {
  if (options_.schedule.kind == "constant" && current_rate_ >= 0) return Status::OK();
  const double rate = options_.schedule.Rate(global_step);
  if (current_rate_ >= 0 && std::fabs(rate - current_rate_) <= 1e-6 * current_rate_) return Status::OK();
  Tensor value(DType::kFloat32, {});
  value.data<float>()[0] = static_cast<float>(rate);
  RETURN_IF_ERROR(session_->Run(model_->set_learning_rate, {{model_->new_learning_rate, value}}).status());
  current_rate_ = rate;
  return Status::OK();
}

Status Trainer::Resume(ShardIterator* it, int64_t* first_step, int64_t* global_step) {
  if (model_->worker_state.empty()) return Status::OK();
  const int w = options_.worker;
  ASSIGN_OR_RETURN(auto out, session_->Run({model_->worker_state.at(w), model_->global_step}));
  const int64_t* state = out[0].data<int64_t>();
  const int64_t steps = state[0];
  if (steps == 0) return Status::OK();
  if (static_cast<uint64_t>(state[3]) != options_.seed) {
    spdlog::warn("worker {}: the snapshot shuffled with seed {}, this run with seed {}: the data order changes", w,
                 state[3], options_.seed);
  }
  DataPosition p{state[1], state[2]};
  if (p.step_in_epoch >= it->steps_per_epoch()) p = DataPosition{p.epoch + 1, 0};  // fewer steps per epoch now
  it->Seek(p);
  *first_step = steps;
  *global_step = Scalar64(out[1]);
  // Sync: pushes continue at the global step; ssp: this worker's clock is
  // its own steps (the servers learn it from its next push).
  session_->store().ResumeAt(session_->options().mode.ssp() ? steps : *global_step);
  spdlog::info("worker {}: resuming after step {} (epoch {}, batch {}), global step {}", w, steps, p.epoch + 1,
               p.step_in_epoch, *global_step);
  return Status::OK();
}

Tensor Trainer::StateAfter(int64_t steps, const DataPosition& p) const {
  Tensor t(DType::kInt64, {4});
  int64_t* v = t.data<int64_t>();
  v[0] = steps;
  v[1] = p.epoch;
  v[2] = p.step_in_epoch;
  v[3] = static_cast<int64_t>(options_.seed);
  return t;
}

bool Trainer::SnapshotDue(int64_t global_step) const {
  if (!saver_ || global_step <= last_snapshot_step_) return false;
  if (options_.snapshot_every_steps > 0 &&
      global_step >= std::max<int64_t>(last_snapshot_step_, 0) + options_.snapshot_every_steps) {
    return true;
  }
  return options_.snapshot_every_secs > 0 &&
         std::chrono::duration<double>(std::chrono::steady_clock::now() - last_snapshot_time_).count() >=
             options_.snapshot_every_secs;
}

// A periodic snapshot that fails (a server restarted while writing it, say)
// costs only that snapshot: the newest committed one still stands, and the
// next one tries again. The final snapshot, taken after training, does fail
// the job.
Status Trainer::FinishSnapshot(WorkerReport* report) {
  if (!snapshot_.valid()) return Status::OK();
  StatusOr<SnapshotStats> done = snapshot_.get();
  if (!done.ok()) {
    ++report->snapshots_failed;
    spdlog::error("[chief] snapshot {} failed: {}; training goes on, and the next snapshot tries again",
                  last_snapshot_step_, done.status().ToString());
    Note({"snapshot_failed", last_snapshot_step_, last_snapshot_step_, 0, done.status().ToString()});
    return Status::OK();
  }
  ++report->snapshots;
  Note({"snapshot_committed", last_snapshot_step_, last_snapshot_step_, 0, ""});
  return Status::OK();
}

// Copies the shards (the only stall) and leaves writing and committing to a
// background thread; at most one snapshot is in flight.
Status Trainer::StartSnapshot(int64_t global_step, WorkerReport* report) {
  RETURN_IF_ERROR(FinishSnapshot(report));
  const auto start = std::chrono::steady_clock::now();
  if (Status begun = saver_->Begin(global_step); !begun.ok()) {
    ++report->snapshots_failed;
    spdlog::error("[chief] snapshot {} failed to start: {}; training goes on", global_step, begun.ToString());
    Note({"snapshot_failed", global_step, global_step, 0, begun.ToString()});
    last_snapshot_step_ = global_step;  // not again at once
    last_snapshot_time_ = std::chrono::steady_clock::now();
    return Status::OK();
  }
  const double stall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report->snapshot_stall_seconds += stall;
  Note({"snapshot", global_step, global_step, stall, ""});
  last_snapshot_step_ = global_step;
  last_snapshot_time_ = std::chrono::steady_clock::now();
  snapshot_ = std::async(std::launch::async, [saver = saver_] { return saver->Finish(); });
  return Status::OK();
}

Status Trainer::NoteServerRestarts(int64_t global_step) {
  if (!client_) return Status::OK();
  // The highest step seen before this check: the step that noticed a restart
  // may already have pulled a restored (lower) global_step.
  const int64_t seen_before = highest_global_step_;
  highest_global_step_ = std::max(highest_global_step_, global_step);
  ASSIGN_OR_RETURN(std::vector<PsClient::ServerRestart> restarts, client_->CheckForRestarts());
  const bool sync = session_->options().mode.sync();
  // Snapshots leave the start-up handshake out, so a restarted server lost
  // it: say again that the model is ready, for workers that start later.
  if (chief() && !restarts.empty()) RETURN_IF_ERROR(PublishReady());
  for (const PsClient::ServerRestart& r : restarts) {
    restarted_servers_.insert(r.server);
    Note({"server_restarted", global_step, r.restored_step, 0, "server " + std::to_string(r.server)});
    if (r.restored_step < 0) {
      spdlog::error("worker {}: server {} restarted with no snapshot to restore from (it holds {} shard(s))",
                    options_.worker, r.server, r.variables);
    } else if (sync) {
      spdlog::warn("worker {}: server {} restarted from snapshot {}: the cluster rolls back to that step",
                   options_.worker, r.server, r.restored_step);
    } else {
      spdlog::warn("worker {}: server {} restarted from snapshot {}: its shards lost the updates of about {} "
                   "global step(s) (this worker saw global step {} before); training goes on",
                   options_.worker, r.server, r.restored_step,
                   std::max<int64_t>(0, seen_before - r.restored_step), seen_before);
    }
  }
  return Status::OK();
}

// Sync mode: the chief restores every server to the newest committed
// snapshot (a restarted server already holds it; the others must go back to
// it, or their shards would be ahead of its); the other workers wait until
// every server reports that restore. Then each continues from its own
// position in that snapshot, so the run goes on exactly as if resumed.
Status Trainer::Recover(const Status& why, ShardIterator* it, int64_t* step, int64_t* global_step,
                        WorkerReport* report) {
  const auto start = std::chrono::steady_clock::now();
  const int w = options_.worker;
  ++report->recoveries;
  spdlog::warn("worker {}: step {} was aborted ({}); recovering (attempt {} of {})", w, *step + 1, why.message(),
               report->recoveries, options_.max_recoveries);
  if (Status s = NoteServerRestarts(*global_step); !s.ok()) spdlog::warn("worker {}: {}", w, s.ToString());
  int64_t snapshot = -1;
  if (chief()) {
    if (!saver_) {
      return FailedPrecondition("the cluster must roll back to a snapshot (" + why.message() +
                                ") but this job has no model_dir to restore from");
    }
    RETURN_IF_ERROR(FinishSnapshot(report));  // one in flight when the server went down: it may have failed
    StatusOr<RestoreResult> restored = saver_->Restore();
    if (!restored.ok()) return restored.status().WithContext("rolling the cluster back after: " + why.message());
    snapshot = restored->step;
    last_snapshot_step_ = restored->step;
    current_rate_ = -1;  // assign the schedule's rate again
    // Snapshots leave the start-up handshake out; a restarted server lost it.
    RETURN_IF_ERROR(PublishReady());
    spdlog::warn("[chief] rolled every server back from global step {} to snapshot {}", *global_step, snapshot);
  } else {
    ASSIGN_OR_RETURN(snapshot, client_->WaitForRollback(std::chrono::steady_clock::now() + options_.recovery_timeout));
  }
  const int64_t before = *step;
  it->Seek(DataPosition{0, 0});
  int64_t first_step = 0;
  RETURN_IF_ERROR(Resume(it, &first_step, global_step));
  *step = first_step;
  report->steps_rolled_back += std::max<int64_t>(0, before - first_step);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::warn("worker {}: recovered in {:.2f} s from snapshot {}: continuing after step {} (global step {}); {} of "
               "this worker's steps are redone",
               w, took, snapshot, first_step, *global_step, std::max<int64_t>(0, before - first_step));
  Note({"recovered", *global_step, snapshot, took, why.ToString()});
  return Status::OK();
}

StatusOr<std::pair<double, double>> Trainer::Evaluate(const Dataset& data) {
  ASSIGN_OR_RETURN(Evaluation e, Evaluate(DatasetExamples(&data)));
  return std::make_pair(std::max(0.0, e.accuracy), e.loss);
}

StatusOr<Evaluation> Trainer::Evaluate(const ExampleSource& data) {
  const int64_t batch = 2000;
  double correct = 0, loss = 0;
  std::vector<float> scores, labels;  // click models: for the AUC
  std::vector<int64_t> indices;
  // Evaluation's view where it differs (batch normalization by its moving
  // statistics, no dropout).
  const auto view = [](Output eval, Output train) { return eval.valid() ? eval : train; };
  std::vector<Output> fetches = {view(model_->eval_loss, model_->loss)};
  if (model_->classifier) fetches.push_back(view(model_->eval_accuracy, model_->accuracy));
  if (model_->click) fetches.push_back(view(model_->eval_output, model_->output));
  for (int64_t first = 0; first < data.size(); first += batch) {
    const int64_t n = std::min(batch, data.size() - first);
    indices.resize(n);
    for (int64_t r = 0; r < n; ++r) indices[r] = first + r;
    FeedMap feeds;
    RETURN_IF_ERROR(data.Feed(indices, *model_, &feeds));
    ASSIGN_OR_RETURN(auto out, session_->Run(fetches, feeds));
    loss += out[0].data<float>()[0] * n;
    if (model_->classifier) correct += out[1].data<float>()[0] * n;
    if (model_->click) {
      const float* logits = out[1].data<float>();
      const float* y = feeds.at(model_->y).data<float>();
      scores.insert(scores.end(), logits, logits + n);
      labels.insert(labels.end(), y, y + n);
    }
  }
  const double n = std::max<int64_t>(1, data.size());
  Evaluation e;
  e.loss = loss / n;
  if (model_->classifier) e.accuracy = correct / n;
  if (model_->click) e.auc = Auc(scores, labels);
  return e;
}

StatusOr<WorkerReport> Trainer::Run(const ProgressFn& progress) {
  WorkerReport report;
  last_snapshot_time_ = std::chrono::steady_clock::now();
  if (chief()) {
    if (Status prepared = PrepareAsChief(&report); !prepared.ok()) {
      PublishChiefFailure();
      return prepared;
    }
  } else {
    RETURN_IF_ERROR(WaitForChief());
  }
  ShardIterator it(train_->size(), options_.worker, options_.num_workers, options_.batch_size, options_.seed);
  if (it.shard_size() == 0) {
    return InvalidArgument("worker " + std::to_string(options_.worker) + " has no training examples: " +
                           std::to_string(train_->size()) + " examples for " +
                           std::to_string(options_.num_workers) + " workers");
  }
  int64_t total = it.steps_per_epoch() * options_.epochs;
  if (options_.max_steps > 0) total = std::min(total, options_.max_steps);

  double window_loss = 0;
  int64_t window_steps = 0, global_step = 0, first_step = 0;
  RETURN_IF_ERROR(Resume(&it, &first_step, &global_step));
  if (first_step >= total) {
    spdlog::info("worker {}: all {} steps were done before the snapshot: nothing to train", options_.worker, total);
  }
  const auto start = std::chrono::steady_clock::now();
  const double pull_before = client_ ? client_->pull_seconds() : 0, push_before = client_ ? client_->push_seconds() : 0;
  report.start_time = WallSeconds();
  report.steps = first_step;
  report.start_global_step = global_step;
  std::vector<int64_t> batch;
  std::vector<Output> fetches = {model_->loss, model_->train_op, model_->global_step};
  if (!model_->worker_state.empty()) fetches.push_back(model_->set_worker_state.at(options_.worker));
  const bool sync = session_->options().mode.sync();
  // Sync: every step also reads the chief's word, for a step to stop at.
  const size_t word_fetch = fetches.size();
  const bool read_word = sync && !chief();
  if (read_word) fetches.push_back(model_->chief_ready);
  // Batch normalization's moving statistics: in the step's own push.
  fetches.insert(fetches.end(), model_->update_ops.begin(), model_->update_ops.end());
  RETURN_IF_ERROR(NoteServerRestarts(global_step));  // learns who the servers are
  std::vector<Tensor> out;  // every step's fetches, in one vector the session reuses
  for (int64_t step = first_step; step < total; ++step) {
    if (aborted()) return Aborted();
    ASSIGN_OR_RETURN(const bool stop, StopDue(global_step, sync));
    if (stop) {
      report.stopped = true;
      spdlog::info("worker {}: stopped on request after step {} of {} (global step {})", options_.worker, step, total,
                   global_step);
      break;
    }
    if (chief()) RETURN_IF_ERROR(UpdateLearningRate(global_step));
    it.NextIndices(&batch);
    FeedMap feeds;
    RETURN_IF_ERROR(train_->Feed(batch, *model_, &feeds));
    // The state after this step travels in the step's own push.
    if (!model_->worker_state.empty()) feeds.emplace(model_->new_worker_state, StateAfter(step + 1, it.position()));
    // Dropout's masks: a function of (seed, worker, step), so a resumed step
    // drops what the first run of it dropped.
    if (model_->step_seed.valid()) {
      const uint64_t seed = (options_.seed * 1000003 + static_cast<uint64_t>(options_.worker)) << 32;
      feeds.emplace(model_->step_seed, Int64Scalar(static_cast<int64_t>(seed ^ static_cast<uint64_t>(step))));
    }
    const auto step_start = std::chrono::steady_clock::now();
    const Status ran = session_->Run(fetches, feeds, &out);
    if (options_.slow_factor > 1.0) {
      std::this_thread::sleep_for((std::chrono::steady_clock::now() - step_start) * (options_.slow_factor - 1.0));
    }
    if (!ran.ok()) {
      Status error = ran;
      if (sync && client_ && error.code() == StatusCode::kAborted && report.recoveries < options_.max_recoveries) {
        RETURN_IF_ERROR(Recover(error, &it, &step, &global_step, &report));
        --step;  // the loop's ++step brings it back to the resumed step
        continue;
      }
      // A server that restarted empty explains an unknown variable, say.
      if (client_) {
        StatusOr<std::vector<PsClient::ServerRestart>> restarts = client_->CheckForRestarts();
        if (restarts.ok() && !restarts->empty()) {
          error = error.WithContext("server " + std::to_string(restarts->front().server) + " restarted" +
                                    (restarts->front().restored_step < 0 ? " with no snapshot to restore from" : ""));
        }
      }
      return error;
    }
    // Pulled before this step was applied (with overlap, before the one
    // before it too): this worker's own steps are known to count.
    global_step = std::max(Scalar64(out[2]) + 1, global_step + 1);
    if (read_word && Scalar64(out[word_fetch]) >= ChiefWord::kStopAt) {
      stop_at_ = Scalar64(out[word_fetch]) - ChiefWord::kStopAt;
    }
    if (client_) RETURN_IF_ERROR(NoteServerRestarts(global_step));
    if (chief() && SnapshotDue(global_step)) RETURN_IF_ERROR(StartSnapshot(global_step, &report));
    window_loss += out[0].data<float>()[0];
    ++window_steps;
    report.steps = step + 1;
    report.examples += options_.batch_size;
    const bool epoch_end = it.position().step_in_epoch == 0;
    const bool log = (step + 1) % options_.log_every == 0 || step + 1 == total || (chief() && epoch_end);
    if (!log) continue;
    TrainProgress p;
    p.epoch = epoch_end ? it.position().epoch : it.position().epoch + 1;
    p.epochs = options_.epochs;
    p.step = step + 1;
    p.total_steps = total;
    p.global_step = global_step;
    p.loss = window_loss / window_steps;
    p.learning_rate = options_.schedule.Rate(global_step);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() - report.eval_seconds;
    p.examples_per_sec = secs > 0 ? report.examples / secs : 0;
    p.seconds = secs;
    if (client_ && secs > 0) {
      p.pull_share = (client_->pull_seconds() - pull_before) / secs;
      p.push_share = (client_->push_seconds() - push_before) / secs;
    }
    report.final_loss = p.loss;
    window_loss = 0;
    window_steps = 0;
    if (chief() && test_ && (epoch_end || step + 1 == total)) {
      const auto eval_start = std::chrono::steady_clock::now();
      ASSIGN_OR_RETURN(Evaluation eval, Evaluate(*test_));
      p.test_accuracy = report.test_accuracy = eval.accuracy;
      if (model_->click) {
        p.test_auc = report.test_auc = eval.auc;
        p.test_logloss = report.test_logloss = eval.loss;
      }
      report.eval_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
    }
    if (progress) progress(p);
  }
  if (report.stopped && window_steps > 0) report.final_loss = window_loss / window_steps;
  RETURN_IF_ERROR(session_->Flush());  // the last step's push, with overlap
  if (client_) RETURN_IF_ERROR(client_->Leave());
  // A stopped chief does not wait: the other workers are stopping too (or,
  // standalone, were not asked to: they finish on their own).
  if (chief() && options_.wait_for_workers && !sync && options_.num_workers > 1 && !report.stopped) {
    const auto wait_start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(WaitForWorkers(total));
    report.wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count();
  }
  RETURN_IF_ERROR(FinishSnapshot(&report));
  if (client_) {
    report.pull_seconds = client_->pull_seconds() - pull_before;
    report.push_seconds = client_->push_seconds() - push_before;
  }
  report.global_step = global_step;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() - report.eval_seconds;
  // Throughput figures leave evaluation out: end as if it had taken no time.
  report.end_time = WallSeconds() - report.eval_seconds;
  return report;
}

}  // namespace cairn
