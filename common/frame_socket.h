// FrameSocket: one TCP connection that reads and writes Cairn frames.
//
// Reads run in a loop: header, bounds check, payload, checksum, then the
// frame handler. A malformed frame or a socket error closes the connection
// and calls the close handler once with the reason. Sends are queued and
// written one frame at a time with scatter/gather (no copy of tensor bytes).
//
// Threading: every handler runs on the socket's executor, which must be a
// strand (create the socket with boost::asio::make_strand). Send and Close
// may be called from any thread. Handlers run on that strand: keep them
// short, and post heavy work elsewhere.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "common/frame.h"
#include "common/status.h"

namespace cairn {

class FrameSocket : public std::enable_shared_from_this<FrameSocket> {
 public:
  using FrameHandler = std::function<void(InFrame)>;
  using CloseHandler = std::function<void(const Status&)>;

  FrameSocket(boost::asio::ip::tcp::socket socket, FrameLimits limits);
  ~FrameSocket();

  // Begins reading. Handlers are released after the close handler runs.
  void Start(FrameHandler on_frame, CloseHandler on_close);
  // Queues a sealed frame. Frames sent after Close are dropped.
  void Send(OutFrame frame);
  // Closes the connection; the close handler sees `reason`.
  void Close(const Status& reason);
  // "127.0.0.1:4242" of the peer, fixed at construction.
  const std::string& peer() const { return peer_; }

 private:
  void ReadHeader();
  void ReadPayload(const FrameHeader& header);
  void WriteNext();
  void Fail(const Status& reason);

  // Constant after construction.
  const FrameLimits limits_;
  std::string peer_;

  // Touched only on the socket's strand.
  boost::asio::ip::tcp::socket socket_;
  uint8_t header_buf_[kFrameHeaderBytes];
  std::deque<OutFrame> queue_;
  bool writing_ = false;
  bool closed_ = false;
  Status close_reason_;
  FrameHandler on_frame_;
  CloseHandler on_close_;
};

// Converts an Asio error into a Status naming the peer.
Status SocketError(const boost::system::error_code& ec, const std::string& peer);

}  // namespace cairn
