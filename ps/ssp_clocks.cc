#include "ps/ssp_clocks.h"

#include <algorithm>
#include <string>
#include <utility>

#include <boost/asio/post.hpp>

namespace cairn {

SspClocks::SspClocks(boost::asio::io_context& io, int num_workers, int staleness, std::chrono::milliseconds timeout,
                     int server_index)
    : io_(io), staleness_(staleness), timeout_(timeout), index_(server_index), clocks_(num_workers, 0) {}

int64_t SspClocks::Slowest() const {
  return clocks_.empty() ? kLeft : *std::min_element(clocks_.begin(), clocks_.end());
}

void SspClocks::Admit(int worker, int64_t clock, std::function<void()> run, std::function<void(const Status&)> fail) {
  Status refused;
  std::vector<Parked> ready;  // reads that this worker's clock, raised here, releases
  {
    MutexLock lock(mu_);
    if (worker < 0 || worker >= static_cast<int>(clocks_.size()) || clock < 0) {
      refused = InvalidArgument("server " + std::to_string(index_) + ": an ssp read by worker " +
                                std::to_string(worker) + " at clock " + std::to_string(clock) + " (the job has " +
                                std::to_string(clocks_.size()) + " workers; clocks start at 0)");
    } else if (clocks_[worker] = std::max(clocks_[worker], clock); Slowest() < clock - staleness_) {
      // (A read at clock c says its worker has pushed c steps: after a
      // restore that is how the servers learn a resumed worker's clock.)
      const int64_t need = clock - staleness_;
      Parked p;
      p.id = next_id_++;
      p.worker = worker;
      p.clock = clock;
      p.since = std::chrono::steady_clock::now();
      p.run = std::move(run);
      p.fail = std::move(fail);
      p.timer = std::make_shared<boost::asio::steady_timer>(io_, timeout_);
      p.timer->async_wait([weak = weak_from_this(), id = p.id](const boost::system::error_code& ec) {
        if (ec) return;  // cancelled: released or cancelled first
        if (auto self = weak.lock()) self->Expire(id);
      });
      parked_.emplace(need, std::move(p));
      ++parked_count_;
      run = nullptr;
    }
    ready = Released();
  }
  Run(std::move(ready));
  if (!refused.ok()) return fail(refused);
  if (run) run();
}

Status SspClocks::CheckWorker(int worker) const {
  MutexLock lock(mu_);
  if (worker < 0 || worker >= static_cast<int>(clocks_.size())) {
    return InvalidArgument("server " + std::to_string(index_) + ": an ssp training push from worker " +
                           std::to_string(worker) + " (the job has " + std::to_string(clocks_.size()) + " workers)");
  }
  return Status::OK();
}

Status SspClocks::Advance(int worker, int64_t clock) {
  RETURN_IF_ERROR(CheckWorker(worker));
  std::vector<Parked> ready;
  {
    MutexLock lock(mu_);
    clocks_[worker] = std::max(clocks_[worker], clock);
    ready = Released();
  }
  Run(std::move(ready));
  return Status::OK();
}

std::vector<SspClocks::Parked> SspClocks::Released() {
  std::vector<Parked> ready;
  const int64_t slowest = Slowest();
  const auto now = std::chrono::steady_clock::now();
  while (!parked_.empty() && parked_.begin()->first <= slowest) {
    Parked p = std::move(parked_.begin()->second);
    parked_.erase(parked_.begin());
    p.timer->cancel();
    parked_seconds_ += std::chrono::duration<double>(now - p.since).count();
    ready.push_back(std::move(p));
  }
  return ready;
}

void SspClocks::Run(std::vector<Parked> ready) {
  for (Parked& p : ready) boost::asio::post(io_, [run = std::move(p.run)] { run(); });
}

void SspClocks::Expire(uint64_t id) {
  Parked p;
  std::string slowest;
  {
    MutexLock lock(mu_);
    auto it = std::find_if(parked_.begin(), parked_.end(), [id](const auto& e) { return e.second.id == id; });
    if (it == parked_.end()) return;
    p = std::move(it->second);
    parked_.erase(it);
    parked_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - p.since).count();
    const auto min = std::min_element(clocks_.begin(), clocks_.end());
    slowest = "worker " + std::to_string(min - clocks_.begin()) + " at clock " + std::to_string(*min);
  }
  p.fail(DeadlineExceeded("server " + std::to_string(index_) + ": a read by worker " + std::to_string(p.worker) +
                          " at clock " + std::to_string(p.clock) + " waited " + std::to_string(timeout_.count()) +
                          " ms for the slowest worker to reach clock " + std::to_string(p.clock - staleness_) +
                          " (staleness " + std::to_string(staleness_) + "); the slowest is " + slowest));
}

std::vector<int64_t> SspClocks::clocks() const {
  MutexLock lock(mu_);
  return clocks_;
}

int64_t SspClocks::slowest() const {
  MutexLock lock(mu_);
  return Slowest();
}

uint64_t SspClocks::parked() const {
  MutexLock lock(mu_);
  return parked_count_;
}

double SspClocks::parked_seconds() const {
  MutexLock lock(mu_);
  return parked_seconds_;
}

void SspClocks::Reset(const std::vector<int64_t>& clocks) {
  std::vector<Parked> ready;
  {
    MutexLock lock(mu_);
    for (size_t w = 0; w < clocks_.size(); ++w) clocks_[w] = w < clocks.size() ? clocks[w] : 0;
    ready = Released();
  }
  Run(std::move(ready));
}

void SspClocks::Cancel(const Status& reason) {
  std::multimap<int64_t, Parked> parked;
  {
    MutexLock lock(mu_);
    parked.swap(parked_);
  }
  for (auto& [need, p] : parked) {
    p.timer->cancel();
    p.fail(reason);
  }
}

}  // namespace cairn
