#include "common/transport.h"

#include <condition_variable>
#include <mutex>
#include <optional>

namespace cairn {

struct CallGroup::State {
  std::mutex mu;
  std::condition_variable cv;
  size_t remaining = 0;                                  // guarded by mu
  std::vector<std::optional<StatusOr<InFrame>>> results;  // guarded by mu
};

CallGroup CallGroup::Start(Transport& transport, std::vector<std::pair<int, OutFrame>> calls, Deadline deadline) {
  auto state = std::make_shared<State>();
  state->remaining = calls.size();
  state->results.resize(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    transport.Call(calls[i].first, std::move(calls[i].second), deadline, [state, i](StatusOr<InFrame> r) {
      std::lock_guard<std::mutex> lock(state->mu);
      state->results[i].emplace(std::move(r));
      if (--state->remaining == 0) state->cv.notify_all();
    });
  }
  return CallGroup(std::move(state));
}

std::vector<StatusOr<InFrame>> CallGroup::Wait() {
  std::unique_lock<std::mutex> lock(state_->mu);
  // Each callback runs by its deadline; the transport guarantees it.
  state_->cv.wait(lock, [&] { return state_->remaining == 0; });
  std::vector<StatusOr<InFrame>> out;
  out.reserve(state_->results.size());
  for (auto& r : state_->results) out.push_back(std::move(*r));
  return out;
}

std::vector<StatusOr<InFrame>> CallAll(Transport& transport, std::vector<std::pair<int, OutFrame>> calls,
                                       Deadline deadline) {
  return CallGroup::Start(transport, std::move(calls), deadline).Wait();
}

}  // namespace cairn
