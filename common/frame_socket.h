// FrameSocket: one TCP connection that reads and writes Cairn frames.
//
// Reads run in a loop: header (checked and bounded), then the payload, hashed
// piece by piece as it arrives, then the trailer checksum, then the frame
// handler. A malformed frame or a socket error closes the connection and calls
// the close handler once with the reason. Sends are queued and written one
// frame at a time with scatter/gather (no copy of tensor bytes), hashed for
// its trailer just before it is written. A frame with a pending checksum
// (OutFrame::pending_checksum) is not hashed here: its bytes are written
// while another thread hashes them (or, with a single loop thread, before a
// handler queued after the send does), all but the last 64 KiB at once, and
// those with the trailer once the checksum is set.
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
#include <vector>

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
  void ReadMore();
  void DeliverPayload();
  void WriteNext();
  void Pump();
  bool AwaitPendingChecksum();
  void SetTrailer(uint64_t checksum);
  uint64_t WritableEnd() const;
  std::vector<boost::asio::const_buffer> Gather(uint64_t from, uint64_t to) const;
  void Fail(const Status& reason);

  // Constant after construction.
  const FrameLimits limits_;
  std::string peer_;

  // Touched only on the socket's strand.
  boost::asio::ip::tcp::socket socket_;
  uint8_t header_buf_[kFrameHeaderBytes];
  // The frame being read: its header, buffer (payload, then trailer), bytes
  // received and bytes of the payload hashed so far.
  FrameHeader in_header_;
  std::shared_ptr<uint8_t> in_payload_;
  uint64_t in_total_ = 0, in_received_ = 0, in_hashed_ = 0;
  FrameChecksum in_sum_;
  std::deque<OutFrame> queue_;
  bool writing_ = false;
  // The frame being written (queue_.front()) as one byte stream: its pieces
  // (header, control, padding, data spans, trailer), their total, the bytes
  // already written, and the end of the bytes that may be written before the
  // trailer is filled in (all of them once hashed here; all but the last
  // kHoldBack bytes of a frame with a pending checksum).
  std::vector<boost::asio::const_buffer> out_pieces_;
  uint64_t out_total_ = 0, out_written_ = 0, out_writable_ = 0;
  FrameChecksum out_sum_;
  std::shared_ptr<PendingChecksum> out_pending_;
  bool out_trailer_ready_ = false;
  uint8_t trailer_buf_[kFrameTrailerBytes] = {};
  bool closed_ = false;
  Status close_reason_;
  FrameHandler on_frame_;
  CloseHandler on_close_;
};

// Converts an Asio error into a Status naming the peer.
Status SocketError(const boost::system::error_code& ec, const std::string& peer);

}  // namespace cairn
