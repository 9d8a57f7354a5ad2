#include "common/parallel_for.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace cairn {
namespace {

// One loop: its pieces, handed out by `next`.
struct Job {
  size_t n = 0;
  const std::function<void(size_t)>* body = nullptr;
  std::atomic<size_t> next{0};

  void Work() {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) (*body)(i);
  }
};

class Helper {
 public:
  static Helper* Get() {
    static Helper* const helper = std::thread::hardware_concurrency() > 1 ? new Helper : nullptr;  // lives to exit
    return helper;
  }

  // Hands `job` to the helper; false if it has one already.
  bool Offer(Job* job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (job_ != nullptr) return false;
    job_ = job;
    taken_ = false;
    wake_.notify_one();
    return true;
  }

  // Returns once the helper no longer touches `job`: at once if it has not
  // picked it up yet (it then never will), or when its Work returns.
  void Withdraw(Job* job) {
    std::unique_lock<std::mutex> lock(mu_);
    if (job_ == job && !taken_) {
      job_ = nullptr;
      return;
    }
    done_.wait(lock, [&] { return job_ != job; });
  }

 private:
  Helper() : thread_([this] { Loop(); }) { thread_.detach(); }

  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [&] { return job_ != nullptr && !taken_; });
      taken_ = true;
      Job* job = job_;
      lock.unlock();
      job->Work();
      lock.lock();
      job_ = nullptr;
      done_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable wake_, done_;
  Job* job_ = nullptr;  // guarded by mu_: the loop offered, until the helper is done with it
  bool taken_ = false;  // guarded by mu_: the helper has started on job_
  std::thread thread_;
};

}  // namespace

void ParallelFor(size_t n, const std::function<void(size_t)>& body) {
  Helper* helper = n > 1 ? Helper::Get() : nullptr;
  Job job;
  job.n = n;
  job.body = &body;
  const bool shared = helper != nullptr && helper->Offer(&job);
  job.Work();
  if (shared) helper->Withdraw(&job);
}

}  // namespace cairn
