// SspClocks: one server's view of every worker's clock under bounded
// staleness (consistency: ssp, staleness: s).
//
// A worker's clock is the number of training steps it has pushed; every
// training push reaches every server (an empty one where it updates
// nothing), so each server sees every tick. A read by a worker at clock c
// is admitted once the slowest worker still training has reached c - s: it
// then sees every worker's first c - s steps, and at most its own c. A read
// that must wait is parked (no polling) and runs as soon as a push brings
// the slowest worker up, or fails after `timeout` with DeadlineExceeded
// naming the slowest worker and its clock. A read at clock c also says its
// worker has pushed c steps (a worker resumed from a snapshot reads at its
// own step count before it pushes). A worker that has finished
// (Leave) holds no one back. s = 0 gives synchronous steps (every worker's
// read at clock c waits for every worker's step c - 1); a large s, async.
//
// Thread-safe. Parked reads run on the io_context's threads, never inside
// Advance's caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/mutex.h"
#include "common/status.h"

namespace cairn {

class SspClocks : public std::enable_shared_from_this<SspClocks> {
 public:
  static constexpr int64_t kLeft = INT64_MAX;  // the clock of a worker that finished

  SspClocks(boost::asio::io_context& io, int num_workers, int staleness, std::chrono::milliseconds timeout,
            int server_index);

  // A read by `worker` at `clock`: `run` is called once it is admitted (at
  // once if it is), or `fail` with why it was not. InvalidArgument for a
  // worker outside [0, num_workers) or a negative clock.
  void Admit(int worker, int64_t clock, std::function<void()> run, std::function<void(const Status&)> fail);
  // InvalidArgument unless `worker` is one of the job's.
  Status CheckWorker(int worker) const;
  // `worker` has pushed `clock` steps; a clock never goes back.
  Status Advance(int worker, int64_t clock);
  // `worker` finished training.
  Status Leave(int worker) { return Advance(worker, kLeft); }

  // Every worker's clock (kLeft for one that finished), and the slowest.
  std::vector<int64_t> clocks() const;
  int64_t slowest() const;
  // Reads parked so far, and the time they waited in all.
  uint64_t parked() const;
  double parked_seconds() const;
  // Replaces every clock (a restore); parked reads are re-checked.
  void Reset(const std::vector<int64_t>& clocks);
  // The server is going away: parked reads fail with `reason`.
  void Cancel(const Status& reason);

 private:
  struct Parked {
    uint64_t id = 0;
    int worker = 0;
    int64_t clock = 0;
    std::chrono::steady_clock::time_point since;
    std::function<void()> run;
    std::function<void(const Status&)> fail;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  int64_t Slowest() const CAIRN_REQUIRES(mu_);
  // Takes out every parked read the slowest clock now admits.
  std::vector<Parked> Released() CAIRN_REQUIRES(mu_);
  void Run(std::vector<Parked> ready);
  void Expire(uint64_t id);

  boost::asio::io_context& io_;
  const int staleness_;
  const std::chrono::milliseconds timeout_;
  const int index_;

  mutable Mutex mu_;
  std::vector<int64_t> clocks_ CAIRN_GUARDED_BY(mu_);
  // Parked reads by the slowest clock they need (clock - staleness).
  std::multimap<int64_t, Parked> parked_ CAIRN_GUARDED_BY(mu_);
  uint64_t next_id_ CAIRN_GUARDED_BY(mu_) = 1;
  uint64_t parked_count_ CAIRN_GUARDED_BY(mu_) = 0;
  double parked_seconds_ CAIRN_GUARDED_BY(mu_) = 0;
};

}  // namespace cairn
