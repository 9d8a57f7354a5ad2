// Test helper: a plain blocking TCP client socket, for sending bytes no Cairn
// client would send. Every wait is bounded.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "common/handshake.h"

namespace cairn::testing {

class RawSocket {
 public:
  // Connects to 127.0.0.1:port; ok() tells whether it worked.
  explicit RawSocket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  bool ok() const { return fd_ >= 0; }

  // Sends all bytes; false if the peer has closed (EPIPE/ECONNRESET).
  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads exactly `n` bytes into `out` within `timeout`; false on a close,
  // an error or the deadline.
  bool Receive(size_t n, std::string* out, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    out->clear();
    char buf[4096];
    while (out->size() < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0) return false;
      if (r == 0) continue;
      ssize_t got = ::recv(fd_, buf, std::min(sizeof(buf), n - out->size()), 0);
      if (got <= 0) return false;
      out->append(buf, static_cast<size_t>(got));
    }
    return true;
  }

  // Runs the client's side of the handshake (common/handshake.h) with
  // `credentials`; OK once the server's proof checks out.
  Status Handshake(const ClientCredentials& credentials,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    ClientHandshake hs(credentials);
    std::string bytes;
    if (!Receive(kServerHelloBytes, &bytes, timeout)) return Unavailable("no server hello");
    StatusOr<std::string> hello = hs.OnServerHello(bytes);
    if (!hello.ok()) return hello.status();
    if (!Send(*hello)) return Unavailable("closed before the client hello was sent");
    if (!Receive(kServerProofBytes, &bytes, timeout)) return Unavailable("no server proof");
    return hs.OnServerProof(bytes);
  }

  // Half-closes the sending side (the server sees EOF).
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // True if the peer closes the connection within `timeout` (reads and
  // discards anything it sends first).
  bool WaitForClose(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count())));
      if (r < 0) return false;
      if (r == 0) continue;
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
};

// A port on 127.0.0.1 with nothing listening on it (bound, then released).
inline uint16_t UnusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace cairn::testing
