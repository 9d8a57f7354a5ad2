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
// Limits (FrameSocketOptions; a server's connections set them, a client's
// leave them off): a connection with no frame arriving and no request
// unanswered for idle_timeout is closed; a frame whose first byte has
// arrived must be complete within read_timeout plus the time its bytes
// received so far earn at min_receive_rate (a truncated frame, a slowloris
// or a header whose claimed payload never comes is closed: the claim earns
// nothing); a payload's
// buffer is allocated as its bytes arrive (first kInitialPayloadBuffer, then
// the rest), and each allocation only once reserved in the server's
// PayloadBudget (waiting, within the frame's deadline, for room), so a
// header that claims 1 GiB commits at most kInitialPayloadBuffer of memory
// and budget until that much has arrived. A frame larger than the whole
// budget is refused from its header.
//
// Threading: every handler runs on the socket's executor, which must be a
// strand (create the socket with boost::asio::make_strand). Send and Close
// may be called from any thread. Handlers run on that strand: keep them
// short, and post heavy work elsewhere.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/frame.h"
#include "common/status.h"

namespace cairn {

// Bytes of incoming payloads a server has committed to and not yet
// received whole, across its connections. Thread-safe.
class PayloadBudget {
 public:
  explicit PayloadBudget(uint64_t capacity) : capacity_(capacity) {}
  // Reserves `bytes` if that leaves the total within the capacity.
  bool TryReserve(uint64_t bytes);
  void Release(uint64_t bytes) { reserved_.fetch_sub(bytes); }
  uint64_t capacity() const { return capacity_; }
  uint64_t reserved() const { return reserved_.load(); }

 private:
  const uint64_t capacity_;
  std::atomic<uint64_t> reserved_{0};
};

struct FrameSocketOptions {
  FrameLimits limits;
  std::chrono::milliseconds idle_timeout{0};  // 0: never closed for idleness
  std::chrono::milliseconds read_timeout{0};  // 0: a frame may take any time
  uint64_t min_receive_rate = uint64_t{1} << 20;  // bytes/s a frame's deadline allows on top of read_timeout
  std::shared_ptr<PayloadBudget> budget;          // null: payloads are not bounded together
  uint64_t budget_capacity() const { return budget ? budget->capacity() : UINT64_MAX; }
};

// A payload buffer starts at most this large and grows to the frame's size
// once these bytes have arrived.
constexpr uint64_t kInitialPayloadBuffer = uint64_t{1} << 20;

class FrameSocket : public std::enable_shared_from_this<FrameSocket> {
 public:
  using FrameHandler = std::function<void(InFrame)>;
  using CloseHandler = std::function<void(const Status&)>;

  FrameSocket(boost::asio::ip::tcp::socket socket, FrameLimits limits);
  FrameSocket(boost::asio::ip::tcp::socket socket, FrameSocketOptions options);
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
  using Clock = std::chrono::steady_clock;
  void ReadHeader();
  void ReadHeaderMore();
  void ReadPayload(const FrameHeader& header);
  void ReserveThen(uint64_t bytes, void (FrameSocket::*then)());
  void StartPayload();
  void GrowPayload();
  void ReadMore();
  void ArmIdle();
  void ArmDeadline(Clock::time_point at, bool idle);
  void OnTimer(uint64_t generation);
  void ReleaseReservation();
  void DeliverPayload();
  void WriteNext();
  void Pump();
  bool AwaitPendingChecksum();
  void ProduceMore();
  void SetTrailer(uint64_t checksum);
  uint64_t WritableEnd() const;
  std::vector<boost::asio::const_buffer> Gather(uint64_t from, uint64_t to) const;
  void Fail(const Status& reason);

  // Constant after construction.
  const FrameSocketOptions options_;
  const FrameLimits& limits_ = options_.limits;
  std::string peer_;

  // Touched only on the socket's strand.
  boost::asio::ip::tcp::socket socket_;
  uint8_t header_buf_[kFrameHeaderBytes];
  size_t header_got_ = 0;
  // The idle or frame deadline (only with timeouts set); a re-arm bumps the
  // generation, so a stale wake-up is ignored.
  boost::asio::steady_timer timer_;
  uint64_t timer_generation_ = 0;
  bool idle_armed_ = false;
  Clock::time_point frame_deadline_{};
  Clock::time_point frame_start_{};          // the frame's first byte
  uint64_t frames_in_ = 0, frames_out_ = 0;  // a server's requests and replies: unanswered = in - out
  uint64_t reserved_ = 0;                    // of options_.budget, for the frame being read
  uint64_t in_capacity_ = 0;                 // bytes allocated for the frame being read
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
  // kHoldBack bytes of a frame with a pending checksum; those produced so
  // far of a frame with a producer).
  std::vector<boost::asio::const_buffer> out_pieces_;
  uint64_t out_total_ = 0, out_written_ = 0, out_writable_ = 0;
  FrameChecksum out_sum_;
  std::shared_ptr<PendingChecksum> out_pending_;
  // A frame with a producer: its data's first byte in the stream, and the
  // data bytes produced (and hashed) so far. Reset once all are.
  std::shared_ptr<FrameProducer> out_producer_;
  uint64_t out_data_begin_ = 0, out_produced_ = 0;
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
