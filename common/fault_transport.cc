#include "common/fault_transport.h"

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace cairn {
namespace {

enum class FaultKind { kNone, kDrop, kDelay, kDuplicate };

struct Rule {
  FaultKind kind = FaultKind::kNone;
  FaultMatch match;
  int countdown = 1;  // matching calls until it fires; 1: the next one
  std::chrono::milliseconds delay{0};
};

bool Matches(const FaultMatch& m, int server, uint16_t type) {
  return (m.server < 0 || m.server == server) && (!m.type || static_cast<uint16_t>(*m.type) == type);
}

std::string CallName(uint16_t type, int server) {
  return std::string(FrameTypeName(type)) + " to server " + std::to_string(server);
}

int64_t Millis(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

// A call a fault was applied to. Several paths may try to finish it (the
// reply, a timer, the destructor); the first one to take `done` does.
struct FaultedCall {
  uint64_t id = 0;
  int server = 0;
  uint16_t type = 0;
  Clock::time_point start;
  Deadline deadline;
  std::mutex mu;             // held while the callback runs
  Transport::Callback done;  // guarded by mu; empty once it has run
};

}  // namespace

// State that callbacks handed to the inner transport share: they may run
// after the FaultTransport is gone (a borrowed inner transport lives on), so
// they hold this, never the FaultTransport.
struct FaultTransport::Core : std::enable_shared_from_this<Core> {
  explicit Core(Transport* t) : inner(t) {}

  // Runs the call's callback with `result`, unless another path already did.
  // The callback runs under call->mu and the call leaves `faulted` only
  // after it, so the destructor, completing what `faulted` still holds,
  // returns only once every faulted call's callback has run.
  void Complete(const std::shared_ptr<FaultedCall>& call, StatusOr<InFrame> result) {
    {
      std::lock_guard<std::mutex> lock(call->mu);
      if (!call->done) return;
      Transport::Callback done = std::exchange(call->done, nullptr);
      done(std::move(result));
    }
    std::lock_guard<std::mutex> lock(mu);
    faulted.erase(call->id);
  }

  // Passes the call to the inner transport, or fails it with Cancelled once
  // shutting down. `sending` lets the destructor wait for an inner Call in
  // progress before an owned inner transport is destroyed.
  void Send(int server, OutFrame frame, Deadline deadline, Transport::Callback done) {
    bool refused = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      refused = shut_down;
      if (!refused) ++sending;
    }
    if (refused) {
      return done(Cancelled("fault transport shut down before " + CallName(frame.type, server) + " was sent"));
    }
    inner->Call(server, std::move(frame), deadline, std::move(done));
    std::lock_guard<std::mutex> lock(mu);
    if (--sending == 0) sends_cv.notify_all();
  }

  // Runs `fn` on the timer thread at `at`; false (and `fn` dropped) once
  // shutting down.
  bool Schedule(Clock::time_point at, std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (shut_down) return false;
      timers.emplace(at, std::move(fn));
    }
    timers_cv.notify_all();
    return true;
  }

  std::shared_ptr<FaultedCall> Register(int server, uint16_t type, Deadline deadline, Transport::Callback done) {
    auto call = std::make_shared<FaultedCall>();
    call->server = server;
    call->type = type;
    call->start = Clock::now();
    call->deadline = deadline;
    call->done = std::move(done);
    std::lock_guard<std::mutex> lock(mu);
    call->id = next_id++;
    faulted.emplace(call->id, call);
    return call;
  }

  // The timer thread's loop; returns once shut_down is set.
  void RunTimers() {
    std::unique_lock<std::mutex> lock(mu);
    while (!shut_down) {
      if (timers.empty()) {
        timers_cv.wait(lock);
        continue;
      }
      auto first = timers.begin();
      if (Clock::now() < first->first) {
        timers_cv.wait_until(lock, first->first);
        continue;
      }
      std::function<void()> fn = std::move(first->second);
      timers.erase(first);
      lock.unlock();
      fn();
      fn = nullptr;  // its captures go outside the lock too
      lock.lock();
    }
  }

  // Fails a cut call on the timer thread rather than inside Call: callbacks
  // run on a transport thread.
  void FailCut(const std::shared_ptr<FaultedCall>& call, int cut_left) {
    Status cut = Unavailable(CallName(call->type, call->server) + " failed: the connection is cut (fault injected; " +
                             std::to_string(cut_left) + " more call(s) to it fail)");
    auto self = shared_from_this();
    if (!Schedule(Clock::now(), [self, call, cut] { self->Complete(call, cut); })) {
      Complete(call, Cancelled("fault transport shut down"));
    }
  }

  void SendDroppingReply(const std::shared_ptr<FaultedCall>& call, OutFrame frame) {
    auto self = shared_from_this();
    Send(call->server, std::move(frame), call->deadline, [self, call](StatusOr<InFrame> reply) {
      if (!reply.ok()) return self->Complete(call, std::move(reply));
      self->Complete(call, Unavailable(CallName(call->type, call->server) +
                                       ": the connection was lost before the reply came back (fault injected: the "
                                       "server answered, the reply was dropped)"));
    });
  }

  // The deadline is this wrapper's to keep: a timer fails the call then,
  // whether or not the held reply has come in.
  void SendDelayingReply(const std::shared_ptr<FaultedCall>& call, OutFrame frame, std::chrono::milliseconds delay) {
    auto self = shared_from_this();
    const std::string late = CallName(call->type, call->server) + " got no reply within " +
                             std::to_string(Millis(call->deadline - call->start)) +
                             " ms (fault injected: reply delayed by " + std::to_string(delay.count()) + " ms)";
    if (!Schedule(call->deadline, [self, call, late] { self->Complete(call, DeadlineExceeded(late)); })) {
      return Complete(call, Cancelled("fault transport shut down"));
    }
    Send(call->server, std::move(frame), call->deadline, [self, call, delay](StatusOr<InFrame> reply) {
      if (!reply.ok()) return self->Complete(call, std::move(reply));
      // Held by a shared_ptr: std::function copies its callable.
      auto held = std::make_shared<StatusOr<InFrame>>(std::move(reply));
      if (!self->Schedule(Clock::now() + delay, [self, call, held] { self->Complete(call, std::move(*held)); })) {
        self->Complete(call, Cancelled("fault transport shut down before a delayed reply was delivered"));
      }
    });
  }

  // The copy goes once the first reply is in, so the server has finished
  // the first copy when the second arrives (a push: answered from its log).
  void SendTwice(const std::shared_ptr<FaultedCall>& call, OutFrame frame) {
    auto self = shared_from_this();
    OutFrame copy = frame;  // shares the data spans' owners (keepalive)
    Send(call->server, std::move(frame), call->deadline,
         [self, call, copy = std::move(copy)](StatusOr<InFrame> reply) mutable {
           if (!reply.ok()) return self->Complete(call, std::move(reply));
           self->Send(call->server, std::move(copy), call->deadline,
                      [self, call](StatusOr<InFrame> again) { self->Complete(call, std::move(again)); });
         });
  }

  // The fault for a call to `server` of `type`, and the rules' counts moved
  // on (see the header); requires mu.
  FaultKind ChooseFault(int server, uint16_t type, std::chrono::milliseconds* delay) {
    FaultKind kind = FaultKind::kNone;
    for (auto it = rules.begin(); it != rules.end();) {
      if (!Matches(it->match, server, type)) {
        ++it;
      } else if (it->countdown > 1) {
        --it->countdown;
        ++it;
      } else if (kind == FaultKind::kNone) {
        kind = it->kind;
        *delay = it->delay;
        it = rules.erase(it);
        Count(kind);
      } else {
        ++it;  // due, but this call is taken: it stays due for the next match
      }
    }
    return kind;
  }

  // Requires mu.
  void Count(FaultKind kind) {
    if (kind == FaultKind::kDrop) {
      ++counts.dropped;
      ++simulated_reconnects;
    } else if (kind == FaultKind::kDelay) {
      ++counts.delayed;
    } else if (kind == FaultKind::kDuplicate) {
      ++counts.duplicated;
    }
  }

  Transport* const inner;  // constant; valid until shut_down and sending == 0

  mutable std::mutex mu;
  std::condition_variable timers_cv;  // a timer added, or shutting down
  std::condition_variable sends_cv;   // sending dropped to 0
  // Guarded by mu.
  bool shut_down = false;
  int sending = 0;
  std::vector<Rule> rules;
  std::map<int, int> cuts;  // server -> calls still to fail
  std::multimap<Clock::time_point, std::function<void()>> timers;
  std::map<uint64_t, std::shared_ptr<FaultedCall>> faulted;  // not yet completed
  uint64_t next_id = 1;
  FaultCounts counts;
  uint64_t simulated_reconnects = 0;
};

FaultTransport::FaultTransport(Transport* inner) : core_(std::make_shared<Core>(inner)) {
  timer_thread_ = std::thread([core = core_] { core->RunTimers(); });
}

FaultTransport::FaultTransport(std::unique_ptr<Transport> inner) : FaultTransport(inner.get()) {
  owned_ = std::move(inner);
}

FaultTransport::~FaultTransport() {
  std::map<uint64_t, std::shared_ptr<FaultedCall>> pending;
  std::multimap<Clock::time_point, std::function<void()>> timers;
  {
    std::unique_lock<std::mutex> lock(core_->mu);
    core_->shut_down = true;
    core_->sends_cv.wait(lock, [&] { return core_->sending == 0; });
    pending.swap(core_->faulted);
    timers.swap(core_->timers);
  }
  core_->timers_cv.notify_all();
  timer_thread_.join();
  for (auto& [id, call] : pending) {
    core_->Complete(call, Cancelled("fault transport shut down before the reply to " +
                                    CallName(call->type, call->server)));
  }
  owned_.reset();  // cancels the inner transport's own pending calls
}

int FaultTransport::num_servers() const { return core_->inner->num_servers(); }

uint64_t FaultTransport::reconnects() const {
  uint64_t simulated = 0;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    simulated = core_->simulated_reconnects;
  }
  return core_->inner->reconnects() + simulated;
}

void FaultTransport::Call(int server, OutFrame frame, Deadline deadline, Callback done) {
  const uint16_t type = frame.type;
  FaultKind kind = FaultKind::kNone;
  std::chrono::milliseconds delay{0};
  int cut_left = -1;  // >= 0: this call is cut, and that many more will be
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    auto cut = core_->cuts.find(server);
    if (cut != core_->cuts.end()) {
      cut_left = --cut->second;
      ++core_->counts.cut;
      if (cut_left == 0) {
        core_->cuts.erase(cut);
        ++core_->simulated_reconnects;
      }
    } else {
      kind = core_->ChooseFault(server, type, &delay);
    }
  }
  if (cut_left < 0 && kind == FaultKind::kNone) return core_->Send(server, std::move(frame), deadline, std::move(done));
  std::shared_ptr<FaultedCall> call = core_->Register(server, type, deadline, std::move(done));
  if (cut_left >= 0) return core_->FailCut(call, cut_left);
  switch (kind) {
    case FaultKind::kDrop: return core_->SendDroppingReply(call, std::move(frame));
    case FaultKind::kDelay: return core_->SendDelayingReply(call, std::move(frame), delay);
    case FaultKind::kDuplicate: return core_->SendTwice(call, std::move(frame));
    case FaultKind::kNone: break;
  }
}

void FaultTransport::DropReply(FaultMatch match, int nth) {
  if (nth < 1) return;
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->rules.push_back(Rule{FaultKind::kDrop, match, nth, {}});
}

void FaultTransport::DelayReply(FaultMatch match, std::chrono::milliseconds delay, int nth) {
  if (nth < 1) return;
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->rules.push_back(Rule{FaultKind::kDelay, match, nth, delay});
}

void FaultTransport::Duplicate(FaultMatch match, int nth) {
  if (nth < 1) return;
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->rules.push_back(Rule{FaultKind::kDuplicate, match, nth, {}});
}

void FaultTransport::Cut(int server, int calls) {
  if (calls < 1) return;
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->cuts[server] += calls;
}

void FaultTransport::ClearFaults() {
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->rules.clear();
  core_->cuts.clear();
}

FaultCounts FaultTransport::counts() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->counts;
}

int FaultTransport::pending_faults() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  int n = static_cast<int>(core_->rules.size());
  for (const auto& [server, calls] : core_->cuts) n += calls;
  return n;
}

}  // namespace cairn
