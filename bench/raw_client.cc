#include "bench/raw_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

Status Errno(const char* what) { return Unavailable(std::string(what) + ": " + std::strerror(errno)); }

}  // namespace

RawClient::RawClient(RawClient&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

RawClient& RawClient::operator=(RawClient&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RawClient::~RawClient() { Close(); }

void RawClient::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

StatusOr<RawClient> RawClient::StartConnect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  RawClient client(fd);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno != EINPROGRESS) {
    return Errno("connect");
  }
  return client;
}

StatusOr<RawClient> RawClient::Connect(uint16_t port, std::chrono::milliseconds timeout) {
  ASSIGN_OR_RETURN(RawClient client, StartConnect(port));
  if (!client.WaitFor(POLLOUT, Clock::now() + timeout)) return DeadlineExceeded("connect timed out");
  RETURN_IF_ERROR(client.FinishConnect());
  return client;
}

Status RawClient::FinishConnect() {
  int error = 0;
  socklen_t len = sizeof(error);
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) return Errno("getsockopt(SO_ERROR)");
  if (error != 0) return Unavailable(std::string("connect: ") + std::strerror(error));
  return Status::OK();
}

StatusOr<size_t> RawClient::SendSome(std::string_view bytes) {
  for (;;) {
    // MSG_NOSIGNAL: a peer that went away is a Status, not SIGPIPE.
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return Errno("send");
  }
}

bool RawClient::ReadAvailable(std::string* out) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

bool RawClient::WaitFor(short events, Clock::time_point deadline) const {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return false;
    pollfd p{fd_, events, 0};
    // Round up, so a wait of under a millisecond still waits.
    const int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left)));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return true;  // the next call reports the error
  }
}

Status RawClient::SendAll(std::string_view bytes, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
    ASSIGN_OR_RETURN(size_t n, SendSome(bytes));
    bytes.remove_prefix(n);
    if (!bytes.empty() && !WaitFor(POLLOUT, deadline)) return DeadlineExceeded("send timed out");
  }
  return Status::OK();
}

Status RawClient::Receive(size_t n, std::string* out, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  out->clear();
  while (out->size() < n) {
    char buf[4096];
    const ssize_t got = ::recv(fd_, buf, std::min(sizeof(buf), n - out->size()), 0);
    if (got > 0) {
      out->append(buf, static_cast<size_t>(got));
      continue;
    }
    if (got == 0) return Unavailable("closed by the server after " + std::to_string(out->size()) + " bytes");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Errno("recv");
    if (!WaitFor(POLLIN, deadline)) return DeadlineExceeded("receive timed out");
  }
  return Status::OK();
}

Status RawClient::Handshake(const ClientCredentials& credentials, std::chrono::milliseconds timeout) {
  ClientHandshake hs(credentials);
  std::string bytes;
  RETURN_IF_ERROR(Receive(kServerHelloBytes, &bytes, timeout).WithContext("server hello"));
  ASSIGN_OR_RETURN(std::string hello, hs.OnServerHello(bytes));
  RETURN_IF_ERROR(SendAll(hello, timeout).WithContext("client hello"));
  RETURN_IF_ERROR(Receive(kServerProofBytes, &bytes, timeout).WithContext("server proof"));
  return hs.OnServerProof(bytes);
}

}  // namespace cairn
