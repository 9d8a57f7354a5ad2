#include "ps/sync_steps.h"

#include <unordered_map>

#include <chrono>

#include <spdlog/spdlog.h>

namespace cairn {

SyncSteps::SyncSteps(boost::asio::io_context& io, Table* store, TrainingMode mode, int server_index)
    : io_(io), store_(store), mode_(std::move(mode)), server_index_(server_index) {}

int64_t SyncSteps::step() const {
  MutexLock lock(mu_);
  return step_;
}

void SyncSteps::Reset(int64_t step) {
  std::map<int, Arrival> waiting;
  int64_t old = 0;
  {
    MutexLock lock(mu_);
    old = step_;
    step_ = step;
    ++resets_;
    waiting.swap(arrived_);
    if (timer_) timer_->cancel();
  }
  if (old != step) spdlog::info("server {}: sync steps continue at step {} (was {})", server_index_, step, old);
  Status aborted = Aborted("server " + std::to_string(server_index_) + " was restored to step " +
                           std::to_string(step) + " while this push waited for step " + std::to_string(old));
  for (auto& [worker, a] : waiting) a.reply(aborted);
}

void SyncSteps::Cancel(const Status& reason) {
  std::map<int, Arrival> waiting;
  {
    MutexLock lock(mu_);
    waiting.swap(arrived_);
    if (timer_) timer_->cancel();
  }
  for (auto& [worker, a] : waiting) a.reply(reason);
}

std::string SyncSteps::Missing() const {
  std::string out;
  for (int w = 0; w < mode_.num_workers; ++w) {
    if (!arrived_.count(w) && !dropped_.count(w)) out += (out.empty() ? "" : ", ") + std::to_string(w);
  }
  return out;
}

int SyncSteps::Expected() const { return mode_.num_workers - static_cast<int>(dropped_.size()); }

Status SyncSteps::Admit(const PushRequest& r) const {
  const int worker = r.worker_id;
  if (worker < 0 || worker >= mode_.num_workers) {
    return InvalidArgument("worker id " + std::to_string(worker) + " is outside this sync job's " +
                           std::to_string(mode_.num_workers) + " workers");
  }
  if (dropped_.count(worker)) {
    return FailedPrecondition("worker " + std::to_string(worker) + " was dropped from this sync job after it missed a "
                              "step's deadline (missing_workers: continue); it cannot rejoin");
  }
  if (r.step != step_ && resets_ > 0) {
    return Aborted("server " + std::to_string(server_index_) + " was restored and continues at step " +
                   std::to_string(step_) + "; worker " + std::to_string(worker) + "'s push for step " +
                   std::to_string(r.step) + " was rolled back");
  }
  if (r.step != step_) {
    return FailedPrecondition("worker " + std::to_string(worker) + " pushed step " + std::to_string(r.step) +
                              " but server " + std::to_string(server_index_) + " is at step " + std::to_string(step_));
  }
  auto it = arrived_.find(worker);
  if (it != arrived_.end() && it->second.request.incarnation == r.incarnation) {
    return FailedPrecondition("worker " + std::to_string(worker) + " pushed step " + std::to_string(step_) + " twice");
  }
  return Status::OK();
}

void SyncSteps::Arrive(Arrival a) {
  std::map<int, Arrival> complete;
  int64_t step = 0;
  Status error;
  Reply superseded;
  {
    MutexLock lock(mu_);
    error = Admit(a.request);
    if (error.ok()) {
      if (arrived_.empty()) {
        timer_ = std::make_unique<boost::asio::steady_timer>(io_, std::chrono::milliseconds(mode_.sync_timeout_ms));
        timer_->async_wait([self = shared_from_this(), s = step_](const boost::system::error_code& ec) {
          if (!ec) self->Expire(s);
        });
      }
      const int worker = a.request.worker_id;
      // A restarted worker (a new incarnation) redoes the step it died in:
      // its push replaces the dead process's, whose reply has nowhere to go.
      auto old = arrived_.find(worker);
      if (old != arrived_.end()) {
        superseded = std::move(old->second.reply);
        arrived_.erase(old);
      }
      arrived_.emplace(worker, std::move(a));
      if (static_cast<int>(arrived_.size()) == Expected()) {
        complete.swap(arrived_);
        step = step_++;
        timer_->cancel();
      }
    }
  }
  // Replies go out without the lock held: they send on sockets.
  if (!error.ok()) return a.reply(error);
  if (superseded) superseded(Aborted("superseded by a push from a restarted incarnation of the same worker"));
  if (!complete.empty()) Complete(std::move(complete), step);
}

// Each sparse table's rows summed per id in worker order (ids in order of
// first appearance, worker by worker: the same pushes give the same bits),
// scaled to the mean over the round's workers (a worker that did not touch
// an id adds zero, as for a dense gradient), applied once.
Status SyncSteps::ApplySparseMean(const std::map<int, Arrival>& round, float scale, float lr) {
  struct Sum {
    std::unordered_map<int64_t, size_t> row_of;
    std::vector<int64_t> ids;
    std::vector<float> values;
  };
  std::map<SparseTable*, Sum> sums;
  for (const auto& [worker, a] : round) {
    for (const SparseGradient& g : a.sparse) {
      Sum& sum = sums[g.table];
      const size_t dim = g.table->spec().dim;
      for (size_t i = 0; i < g.count; ++i) {
        auto [it, fresh] = sum.row_of.emplace(g.ids[i], sum.ids.size());
        if (fresh) {
          sum.ids.push_back(g.ids[i]);
          sum.values.insert(sum.values.end(), g.values + i * dim, g.values + (i + 1) * dim);
        } else {
          float* row = sum.values.data() + it->second * dim;
          for (size_t j = 0; j < dim; ++j) row[j] += g.values[i * dim + j];
        }
      }
    }
  }
  for (auto& [table, sum] : sums) {
    for (float& x : sum.values) x *= scale;
    table->ApplyCheckedGradients(sum.ids.data(), sum.ids.size(), sum.values.data(), lr);  // unique ids; each push checked
  }
  return Status::OK();
}

void SyncSteps::Complete(std::map<int, Arrival> round, int64_t step) {
  // Sum every variable's gradients in worker order, then apply the mean once.
  std::map<std::string, Tensor> sums;
  // The lowest worker id's rate, as it sent it (-1: the optimizer's own).
  const float lr = round.begin()->second.request.learning_rate;
  std::string global_step;
  Status status;
  {  // one update: a snapshot sees all of this step or none of it
    Table::UpdateScope update = store_->BeginUpdate();
    for (auto& [worker, a] : round) {
      if (global_step.empty()) global_step = a.request.global_step;
      for (size_t i = 0; i < a.request.grads.size() && status.ok(); ++i) {
        const TensorDesc& d = a.request.grads[i];
        if (d.update != UpdateKind::kGradient) {
          status = store_->Apply(d.name, d.update, a.values[i]);
          continue;
        }
        auto it = sums.find(d.name);
        if (it == sums.end()) sums.emplace(d.name, a.values[i].Clone());
        else it->second.flat() += a.values[i].flat();
      }
    }
    const float scale = 1.0f / static_cast<float>(round.size());
    for (auto& [name, sum] : sums) {
      if (!status.ok()) break;
      sum.flat() *= scale;
      status = store_->Apply(name, UpdateKind::kGradient, sum, lr);
    }
    if (status.ok()) status = ApplySparseMean(round, scale, lr);
    if (status.ok() && !global_step.empty()) store_->CountStep(global_step);
  }
  if (!status.ok()) {
    spdlog::error("server {}: sync step {} failed to apply: {}", server_index_, step, status.ToString());
  }
  for (auto& [worker, a] : round) a.reply(status);
}

void SyncSteps::Expire(int64_t step) {
  std::map<int, Arrival> waiting;
  std::string missing;
  const bool drop = mode_.missing_workers == MissingWorkers::kContinue;
  {
    MutexLock lock(mu_);
    if (step != step_ || arrived_.empty()) return;
    missing = Missing();
    waiting.swap(arrived_);
    if (drop) {
      for (int w = 0; w < mode_.num_workers; ++w) {
        if (!waiting.count(w)) dropped_.insert(w);
      }
      ++step_;
    }
  }
  if (drop) {
    spdlog::warn("server {}: sync step {}: worker(s) {} did not push within {} ms; continuing without them with {} "
                 "worker(s)",
                 server_index_, step, missing, mode_.sync_timeout_ms, waiting.size());
    return Complete(std::move(waiting), step);
  }
  Status error = DeadlineExceeded("sync step " + std::to_string(step) + " on server " + std::to_string(server_index_) +
                                  ": worker(s) " + missing + " did not push within " +
                                  std::to_string(mode_.sync_timeout_ms) + " ms");
  spdlog::warn("{}", error.message());
  for (auto& [worker, a] : waiting) a.reply(error);
}

}  // namespace cairn
