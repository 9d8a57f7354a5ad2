// Connections: the server's front door. Listens, accepts, authenticates
// each connection (common/handshake.h) before reading a frame from it, reads
// frames on each connection's strand, and hands every well-formed request,
// with the identity its handshake proved, to the dispatcher, off the strand
// (handlers may be heavy: an optimizer step over a large shard), so the
// connection's next read can start at once.
//
// Limits (ConnectionLimits): connections beyond max_connections are closed
// at once (the cap is kept below the process's file-descriptor limit, so a
// flood cannot starve the server of descriptors); a handshake must finish
// within handshake_timeout; idle and frame deadlines and the payload budget
// as FrameSocketOptions says. Refusals and failed handshakes are counted and
// logged at most once per 5 s each.
//
// A frame that is not a well-formed Cairn frame (bad magic, oversized, bad
// checksum, truncated) closes that one connection with a logged reason.
//
// A Request carries its own way back: Responder answers it at once or
// later, from any thread, and is safe to use after the connection has gone
// (the answer is dropped).
//
// Thread-safe. Owns the acceptor and the set of open connections, guarded
// by mu_; nothing else touches them.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/mutex.h"
#include "common/cluster_spec.h"
#include "common/event_loop.h"
#include "common/frame.h"
#include "common/frame_socket.h"
#include "common/handshake.h"
#include "common/log_limiter.h"
#include "common/status.h"

namespace cairn {

// Counters shared by the front door and the responders it hands out.
struct ConnectionStats {
  std::atomic<uint64_t> frames_rejected{0};       // connections closed for a malformed frame
  std::atomic<uint64_t> requests_failed{0};       // requests answered with an error
  std::atomic<uint64_t> connections_accepted{0};   // authenticated and serving
  std::atomic<uint64_t> connections_refused{0};    // over max_connections
  std::atomic<uint64_t> handshakes_failed{0};      // wrong or no secret, malformed or late handshake
  std::atomic<uint64_t> connections_timed_out{0};  // idle, or a frame not complete by its deadline
  std::atomic<uint64_t> accept_errors{0};          // accept() failed (out of descriptors, say)
};

struct ConnectionLimits {
  int max_connections = 1024;                              // open and handshaking; lowered to fit the fd limit
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(15)};  // no frame and nothing unanswered
  std::chrono::milliseconds read_timeout{30000};           // a begun frame: this plus its bytes so far at min_receive_rate
  uint64_t min_receive_rate = uint64_t{1} << 20;           // bytes/s
  uint64_t max_pending_payload_bytes = uint64_t{2} << 30;  // all connections' payloads being received
};

// The connection cap that fits this process's file-descriptor limit
// (RLIMIT_NOFILE less a reserve for databases and clients), at most `wanted`.
int EffectiveMaxConnections(int wanted);

// The reply frame to `request` carrying `control` (type | 0x8000, same id).
OutFrame ReplyTo(const FrameHeader& request, std::string control);

class Responder {
 public:
  Responder() = default;
  Responder(std::weak_ptr<FrameSocket> conn, FrameHeader header, int server_index,
            std::shared_ptr<ConnectionStats> stats)
      : conn_(std::move(conn)), header_(header), server_index_(server_index), stats_(std::move(stats)) {}

  const FrameHeader& header() const { return header_; }
  // Answers with a control message (a reply struct, encoded).
  void Reply(std::string control) const;
  // Answers with an error (counted, and logged with the peer).
  void Fail(const Status& status) const;
  // OK: an empty StatusReply; otherwise Fail.
  void Finish(const Status& status) const;
  // Answers with a whole frame (a pull's data spans); sealed here.
  void Send(OutFrame reply) const;
  // The connection, if it is still open.
  std::shared_ptr<FrameSocket> connection() const { return conn_.lock(); }

 private:
  std::weak_ptr<FrameSocket> conn_;
  FrameHeader header_;
  int server_index_ = 0;
  std::shared_ptr<ConnectionStats> stats_;
};

struct Request {
  InFrame frame;
  Responder respond;
  PeerIdentity peer;  // as the connection's handshake proved it
};

class Connections : public std::enable_shared_from_this<Connections> {
 public:
  using Dispatch = std::function<void(Request)>;

  // `loop` must outlive this object; `dispatch` runs on the loop's threads.
  Connections(EventLoop& loop, int server_index, FrameLimits limits, ServerAuth auth, ConnectionLimits conn_limits,
              Dispatch dispatch);

  // Binds and starts accepting. Unavailable if the address cannot be bound.
  Status Listen(const std::string& bind_address, uint16_t port);
  Endpoint endpoint() const { return endpoint_; }
  uint64_t open_connections() const;         // serving or handshaking, now
  uint64_t payload_bytes_reserved() const { return budget_->reserved(); }
  const std::shared_ptr<ConnectionStats>& stats() const { return stats_; }

  // Stops accepting and closes every connection; the port is free when it
  // returns. Idempotent.
  void Stop();

 private:
  void Accept();
  void AcceptAgain(std::chrono::milliseconds delay);
  void Adopt(boost::asio::ip::tcp::socket socket);
  void Authenticated(const std::shared_ptr<boost::asio::ip::tcp::socket>& socket, const StatusOr<PeerIdentity>& peer,
                     const std::string& from);
  void Closed(const std::shared_ptr<FrameSocket>& conn, const Status& reason);

  // Constant after construction.
  EventLoop& loop_;
  const int index_;
  const FrameLimits limits_;
  const ServerAuth auth_;
  const ConnectionLimits conn_limits_;
  const int max_connections_;
  const std::shared_ptr<PayloadBudget> budget_;
  const Dispatch dispatch_;
  const std::shared_ptr<ConnectionStats> stats_ = std::make_shared<ConnectionStats>();
  Endpoint endpoint_;  // set by Listen, before any connection

  boost::asio::ip::tcp::acceptor acceptor_;     // on its strand
  boost::asio::steady_timer accept_timer_;      // on the acceptor's strand
  std::chrono::milliseconds accept_backoff_{0}; // on the acceptor's strand
  LogLimiter refused_log_, handshake_log_, accept_log_, dropped_log_;

  mutable Mutex mu_;
  bool stopped_ CAIRN_GUARDED_BY(mu_) = false;
  std::set<std::shared_ptr<FrameSocket>> open_ CAIRN_GUARDED_BY(mu_);
  std::set<std::shared_ptr<boost::asio::ip::tcp::socket>> handshaking_ CAIRN_GUARDED_BY(mu_);
};

}  // namespace cairn
