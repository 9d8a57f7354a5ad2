#include "common/frame_socket.h"

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

namespace cairn {
namespace asio = boost::asio;

namespace {
const uint8_t kZeros[kControlAlignment] = {};

// Asio's transfer_all moves at most 64 KiB per system call; a MiB tensor
// then costs 16 sends, receives and epoll re-arms. Allow 16 MiB per call.
size_t LargeChunks(const boost::system::error_code& ec, size_t) { return ec ? 0 : size_t{16} << 20; }
}  // namespace

Status SocketError(const boost::system::error_code& ec, const std::string& peer) {
  if (ec == asio::error::eof) return Unavailable("connection closed by " + peer);
  if (ec == asio::error::operation_aborted) return Cancelled("connection to " + peer + " closed locally");
  return Unavailable("connection to " + peer + ": " + ec.message());
}

FrameSocket::FrameSocket(asio::ip::tcp::socket socket, FrameLimits limits)
    : limits_(limits), socket_(std::move(socket)) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("<unknown peer>") : ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
}

FrameSocket::~FrameSocket() = default;

void FrameSocket::Start(FrameHandler on_frame, CloseHandler on_close) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), f = std::move(on_frame),
                                      c = std::move(on_close)]() mutable {
    if (self->closed_) {
      // Closed before it started: the close handler still runs, once.
      if (c) c(self->close_reason_);
      return;
    }
    self->on_frame_ = std::move(f);
    self->on_close_ = std::move(c);
    self->ReadHeader();
  });
}

void FrameSocket::ReadHeader() {
  asio::async_read(socket_, asio::buffer(header_buf_),
                   [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
                     if (ec) return self->Fail(SocketError(ec, self->peer_));
                     StatusOr<FrameHeader> header = DecodeHeader(self->header_buf_, self->limits_);
                     if (!header.ok()) return self->Fail(header.status().WithContext("bad frame from " + self->peer_));
                     self->ReadPayload(*header);
                   });
}

void FrameSocket::ReadPayload(const FrameHeader& header) {
  std::shared_ptr<uint8_t> payload = AllocatePayload(header.payload_len());
  uint8_t* base = payload.get();
  asio::async_read(socket_, asio::buffer(base, header.payload_len()), LargeChunks,
                   [self = shared_from_this(), header, payload = std::move(payload)](
                       const boost::system::error_code& ec, size_t) mutable {
                     if (ec) return self->Fail(SocketError(ec, self->peer_));
                     InFrame frame;
                     Status s = VerifyPayload(header, std::move(payload), &frame);
                     if (!s.ok()) return self->Fail(s.WithContext("bad frame from " + self->peer_));
                     if (self->closed_) return;
                     self->on_frame_(std::move(frame));
                     if (!self->closed_) self->ReadHeader();
                   });
}

void FrameSocket::Send(OutFrame frame) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), frame = std::move(frame)]() mutable {
    if (self->closed_) return;
    self->queue_.push_back(std::move(frame));
    if (!self->writing_) self->WriteNext();
  });
}

void FrameSocket::WriteNext() {
  if (queue_.empty() || closed_) {
    writing_ = false;
    return;
  }
  writing_ = true;
  const OutFrame& f = queue_.front();
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(3 + f.data.size());
  buffers.emplace_back(f.header_bytes(), kFrameHeaderBytes);
  if (!f.control.empty()) buffers.emplace_back(f.control.data(), f.control.size());
  if (f.padding() > 0) buffers.emplace_back(kZeros, f.padding());
  for (const ByteSpan& s : f.data) {
    if (s.size > 0) buffers.emplace_back(s.data, s.size);
  }
  asio::async_write(socket_, buffers, LargeChunks, [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
    if (!self->queue_.empty()) self->queue_.pop_front();
    if (ec) return self->Fail(SocketError(ec, self->peer_));
    self->WriteNext();
  });
}

void FrameSocket::Close(const Status& reason) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), reason] { self->Fail(reason); });
}

void FrameSocket::Fail(const Status& reason) {
  if (closed_) return;
  closed_ = true;
  close_reason_ = reason;
  // The close handler runs before the socket closes, so whatever it records
  // (a rejected-frame count, say) is visible by the time the peer sees EOF.
  CloseHandler on_close = std::move(on_close_);
  on_frame_ = nullptr;
  on_close_ = nullptr;
  if (on_close) on_close(reason);
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  // A write in progress still owns the front frame's buffers until its
  // handler runs; keep that frame, drop the rest.
  if (writing_ && !queue_.empty()) queue_.erase(queue_.begin() + 1, queue_.end());
  else queue_.clear();
}

}  // namespace cairn
