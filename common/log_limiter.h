// LogLimiter: at most one log line per interval for an event that a peer can
// make happen at will (a failed handshake, a refused connection, an accept
// error), so that a flood of them cannot flood the log. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace cairn {

class LogLimiter {
 public:
  explicit LogLimiter(std::chrono::milliseconds interval = std::chrono::seconds(5)) : interval_(interval) {}

  // True if a line may go out now; then `*suppressed` is the number of
  // events held back since the last line (to say in it).
  bool Allow(uint64_t* suppressed) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (logged_once_ && now < next_) {
      ++held_;
      return false;
    }
    logged_once_ = true;
    next_ = now + interval_;
    *suppressed = held_;
    held_ = 0;
    return true;
  }

 private:
  const std::chrono::milliseconds interval_;
  std::mutex mu_;
  bool logged_once_ = false;                 // guarded by mu_
  std::chrono::steady_clock::time_point next_;  // guarded by mu_
  uint64_t held_ = 0;                        // guarded by mu_
};

}  // namespace cairn
