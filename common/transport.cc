#include "common/transport.h"

#include <condition_variable>
#include <mutex>
#include <optional>

namespace cairn {

std::vector<StatusOr<InFrame>> CallAll(Transport& transport, std::vector<std::pair<int, OutFrame>> calls,
                                       Deadline deadline) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    size_t remaining;
    std::vector<std::optional<StatusOr<InFrame>>> results;
  };
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
  std::unique_lock<std::mutex> lock(state->mu);
  // Each callback runs by its deadline; the transport guarantees it.
  state->cv.wait(lock, [&] { return state->remaining == 0; });
  std::vector<StatusOr<InFrame>> out;
  out.reserve(calls.size());
  for (auto& r : state->results) out.push_back(std::move(*r));
  return out;
}

}  // namespace cairn
