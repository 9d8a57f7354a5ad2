// Bounded polling for tests: a condition that another thread or process makes
// true, checked every `period` until it holds or `limit` passes.
#pragma once

#include <chrono>
#include <thread>

namespace cairn {

// True as soon as `done()` holds; false if it still does not after `limit`.
template <class Pred>
bool WaitUntil(Pred done, std::chrono::milliseconds limit = std::chrono::milliseconds(5000),
               std::chrono::milliseconds period = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(period);
  }
  return true;
}

}  // namespace cairn
