// Connections: the server's front door. Listens, accepts, reads frames on
// each connection's strand, and hands every well-formed request to the
// dispatcher, off the strand (handlers may be heavy: an optimizer step over
// a large shard), so the connection's next read can start at once.
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
#include "common/status.h"

namespace cairn {

// Counters shared by the front door and the responders it hands out.
struct ConnectionStats {
  std::atomic<uint64_t> frames_rejected{0};       // connections closed for a malformed frame
  std::atomic<uint64_t> requests_failed{0};       // requests answered with an error
  std::atomic<uint64_t> connections_accepted{0};
};

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
};

class Connections : public std::enable_shared_from_this<Connections> {
 public:
  using Dispatch = std::function<void(Request)>;

  // `loop` must outlive this object; `dispatch` runs on the loop's threads.
  Connections(EventLoop& loop, int server_index, FrameLimits limits, Dispatch dispatch);

  // Binds and starts accepting. Unavailable if the address cannot be bound.
  Status Listen(const std::string& bind_address, uint16_t port);
  Endpoint endpoint() const { return endpoint_; }
  const std::shared_ptr<ConnectionStats>& stats() const { return stats_; }

  // Stops accepting and closes every connection; the port is free when it
  // returns. Idempotent.
  void Stop();

 private:
  void Accept();
  void AcceptAgain(std::chrono::milliseconds delay);
  void Adopt(boost::asio::ip::tcp::socket socket);
  void Closed(const std::shared_ptr<FrameSocket>& conn, const Status& reason);

  // Constant after construction.
  EventLoop& loop_;
  const int index_;
  const FrameLimits limits_;
  const Dispatch dispatch_;
  const std::shared_ptr<ConnectionStats> stats_ = std::make_shared<ConnectionStats>();
  Endpoint endpoint_;  // set by Listen, before any connection

  boost::asio::ip::tcp::acceptor acceptor_;     // on its strand
  boost::asio::steady_timer accept_timer_;      // on the acceptor's strand

  Mutex mu_;
  bool stopped_ CAIRN_GUARDED_BY(mu_) = false;
  std::set<std::shared_ptr<FrameSocket>> open_ CAIRN_GUARDED_BY(mu_);
};

}  // namespace cairn
