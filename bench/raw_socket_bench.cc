#include "bench/raw_socket_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

namespace cairn {
namespace {

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status Errno(const std::string& what) { return Unavailable(what + ": " + std::strerror(errno)); }

Status SendAll(int fd, const uint8_t* data, uint64_t n) {
  while (n > 0) {
    // MSG_NOSIGNAL: a peer that went away is an error to report, not SIGPIPE.
    const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Errno("raw socket send");
    data += w;
    n -= static_cast<uint64_t>(w);
  }
  return Status::OK();
}

// Reads exactly n bytes. Cancelled on a clean end of stream before any byte.
Status RecvAll(int fd, uint8_t* data, uint64_t n) {
  const uint64_t want = n;
  while (n > 0) {
    const ssize_t r = ::recv(fd, data, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Errno("raw socket recv");
    if (r == 0) {
      return n == want ? Cancelled("raw socket closed by peer") : Unavailable("raw socket closed mid-message");
    }
    data += r;
    n -= static_cast<uint64_t>(r);
  }
  return Status::OK();
}

Status SetNoDelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) return Errno("TCP_NODELAY");
  return Status::OK();
}

// A listening socket on an ephemeral loopback port; `addr` gets its address.
StatusOr<Fd> Listen(sockaddr_in* addr) {
  Fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  if (fd.get() < 0) return Errno("raw socket");
  *addr = {};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(addr), len) != 0) return Errno("raw socket bind");
  if (::listen(fd.get(), 64) != 0) return Errno("raw socket listen");
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(addr), &len) != 0) return Errno("raw socket getsockname");
  return fd;
}

}  // namespace

// One (worker, server) connection: the client end is driven by the timed
// loop, the server end by a thread of its own.
class RawSocketBench::Pair {
 public:
  Pair(Fd client, Fd server, uint64_t message_bytes, uint32_t ack_bytes)
      : client_(std::move(client)),
        server_(std::move(server)),
        message_(message_bytes),
        ack_(ack_bytes),
        client_message_(std::make_unique<uint8_t[]>(message_bytes)),
        client_ack_(std::make_unique<uint8_t[]>(ack_bytes)) {
    std::memset(client_message_.get(), 0x5a, message_bytes);
    server_thread_ = std::thread([this] { Serve(); });
  }
  // Ends the server thread: it sees end-of-stream after the last message.
  ~Pair() {
    ::shutdown(client_.get(), SHUT_WR);
    if (server_thread_.joinable()) server_thread_.join();
  }

  // One message out and its ack back.
  Status Call() {
    RETURN_IF_ERROR(SendAll(client_.get(), client_message_.get(), message_));
    return RecvAll(client_.get(), client_ack_.get(), ack_);
  }

 private:
  void Serve() {
    // The whole message lands in one buffer of its size, as a frame payload
    // does in Cairn, so the baseline touches as much memory as the system.
    auto buffer = std::make_unique<uint8_t[]>(message_);
    auto ack = std::make_unique<uint8_t[]>(ack_);
    std::memset(ack.get(), 0, ack_);
    while (RecvAll(server_.get(), buffer.get(), message_).ok()) {
      if (!SendAll(server_.get(), ack.get(), ack_).ok()) break;
    }
  }

  Fd client_, server_;
  const uint64_t message_;
  const uint32_t ack_;
  std::unique_ptr<uint8_t[]> client_message_, client_ack_;
  std::thread server_thread_;
};

namespace {

// Both ends of one loopback connection: {client, server}.
StatusOr<std::pair<Fd, Fd>> Connect(int listener, const sockaddr_in& addr) {
  Fd client(::socket(AF_INET, SOCK_STREAM, 0));
  if (client.get() < 0) return Errno("raw socket");
  if (::connect(client.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Errno("raw socket connect");
  }
  Fd server(::accept(listener, nullptr, nullptr));
  if (server.get() < 0) return Errno("raw socket accept");
  RETURN_IF_ERROR(SetNoDelay(client.get()));
  RETURN_IF_ERROR(SetNoDelay(server.get()));
  return std::make_pair(std::move(client), std::move(server));
}

Status Validate(const RawSocketOptions& o) {
  if (o.workers < 1 || o.message_bytes.empty()) return InvalidArgument("raw socket bench needs a worker and a server");
  if (o.ack_bytes < 1) return InvalidArgument("raw socket bench needs an ack of at least one byte");
  for (uint64_t b : o.message_bytes) {
    if (b == 0) return InvalidArgument("raw socket bench messages must not be empty");
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<RawSocketBench>> RawSocketBench::Start(const RawSocketOptions& options) {
  RETURN_IF_ERROR(Validate(options));
  sockaddr_in addr;
  ASSIGN_OR_RETURN(Fd listener, Listen(&addr));
  std::unique_ptr<RawSocketBench> bench(new RawSocketBench());
  for (int w = 0; w < options.workers; ++w) {
    for (uint64_t bytes : options.message_bytes) {
      ASSIGN_OR_RETURN(auto ends, Connect(listener.get(), addr));
      auto pair = std::make_unique<Pair>(std::move(ends.first), std::move(ends.second), bytes, options.ack_bytes);
      bench->tasks_.push_back(TimedTask{[p = pair.get()] { return p->Call(); }, bytes});
      bench->pairs_.push_back(std::move(pair));
    }
  }
  return bench;
}

RawSocketBench::~RawSocketBench() = default;

StatusOr<Measurement> RawSocketBench::Measure(const TimedLoopOptions& timing) { return RunTimedLoop(tasks_, timing); }

}  // namespace cairn
