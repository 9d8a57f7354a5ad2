// RawClient: one plain POSIX TCP connection to 127.0.0.1, for bench peers
// that must do what no Cairn client does (connect and say nothing, trickle a
// handshake byte by byte, claim a 1 GiB frame and stall) and for timing a
// connection and its handshake with nothing else in the way.
//
// The socket is non-blocking: StartConnect, SendSome and ReadAvailable never
// wait, so one thread can drive hundreds of clients from a poll() loop; the
// blocking helpers (Connect, SendAll, Receive, Handshake) wait with poll()
// and every wait is bounded by its timeout.
//
// Not thread-safe: one thread drives a client. Move-only; the destructor
// closes the socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/handshake.h"
#include "common/status.h"

namespace cairn {

class RawClient {
 public:
  RawClient() = default;  // not open
  RawClient(RawClient&& other) noexcept;
  RawClient& operator=(RawClient&& other) noexcept;
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // Begins connecting to 127.0.0.1:port without waiting: poll the fd for
  // POLLOUT, then FinishConnect. Unavailable if no socket can be made or the
  // connect fails at once.
  static StatusOr<RawClient> StartConnect(uint16_t port);
  // Connects and waits for it, up to `timeout` (DeadlineExceeded past it).
  static StatusOr<RawClient> Connect(uint16_t port, std::chrono::milliseconds timeout);
  // After POLLOUT on a StartConnect'ed socket: OK if connected, Unavailable
  // with the reason (refused, reset) otherwise.
  Status FinishConnect();

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  void Close();

  // Sends what the socket takes now of `bytes`; returns how many it took
  // (0 when its buffer is full). Unavailable once the peer has gone.
  StatusOr<size_t> SendSome(std::string_view bytes);
  // Appends what has arrived to `out` without waiting. Returns false once
  // the peer has closed (or reset) the connection, true while it is open.
  bool ReadAvailable(std::string* out);

  // Sends all of `bytes` / reads exactly `n` bytes into `out` within
  // `timeout`: DeadlineExceeded past it, Unavailable if the peer closes.
  Status SendAll(std::string_view bytes, std::chrono::milliseconds timeout);
  Status Receive(size_t n, std::string* out, std::chrono::milliseconds timeout);

  // The client's side of the handshake (common/handshake.h) with
  // `credentials`, within `timeout`: OK once the server's proof checks out
  // (or, without a secret, once an insecure server has answered).
  Status Handshake(const ClientCredentials& credentials, std::chrono::milliseconds timeout);

 private:
  explicit RawClient(int fd) : fd_(fd) {}
  // Waits for `events` on the socket until `deadline`; false past it.
  bool WaitFor(short events, std::chrono::steady_clock::time_point deadline) const;

  int fd_ = -1;
};

}  // namespace cairn
