#include "common/frame_socket.h"

#include <algorithm>
#include <cstring>

#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>

namespace cairn {
namespace asio = boost::asio;

namespace {
const uint8_t kZeros[kControlAlignment] = {};

// Of a frame whose checksum another thread computes, the bytes held back
// until it is known, so the trailer goes out with them rather than alone.
constexpr uint64_t kHoldBack = uint64_t{64} << 10;
// Bytes written in one turn on the strand before the rest is posted, so that
// a huge frame does not keep this connection's reads waiting.
constexpr uint64_t kMaxWriteBurst = uint64_t{4} << 20;

// Calls f(pointer, size) for the bytes [from, to) of the stream `pieces`.
template <typename F>
void ForEachPiece(const std::vector<asio::const_buffer>& pieces, uint64_t from, uint64_t to, F&& f) {
  uint64_t at = 0;
  for (const asio::const_buffer& b : pieces) {
    const uint64_t end = at + b.size();
    if (end > from && at < to) {
      const uint64_t lo = std::max(at, from), hi = std::min(end, to);
      f(static_cast<const uint8_t*>(b.data()) + (lo - at), static_cast<size_t>(hi - lo));
    }
    if (end >= to) break;
    at = end;
  }
}
}  // namespace

Status SocketError(const boost::system::error_code& ec, const std::string& peer) {
  if (ec == asio::error::eof) return Unavailable("connection closed by " + peer);
  if (ec == asio::error::operation_aborted) return Cancelled("connection to " + peer + " closed locally");
  return Unavailable("connection to " + peer + ": " + ec.message());
}

bool PayloadBudget::TryReserve(uint64_t bytes) {
  uint64_t now = reserved_.load();
  do {
    if (bytes > capacity_ || now > capacity_ - bytes) return false;
  } while (!reserved_.compare_exchange_weak(now, now + bytes));
  return true;
}

FrameSocket::FrameSocket(asio::ip::tcp::socket socket, FrameLimits limits)
    : FrameSocket(std::move(socket), [&] {
        FrameSocketOptions o;
        o.limits = limits;
        return o;
      }()) {}

FrameSocket::FrameSocket(asio::ip::tcp::socket socket, FrameSocketOptions options)
    : options_(std::move(options)), socket_(std::move(socket)), timer_(socket_.get_executor()) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("<unknown peer>") : ep.address().to_string() + ":" + std::to_string(ep.port());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  // Writes are synchronous attempts that report would_block (see Pump).
  socket_.non_blocking(true, ec);
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
  header_got_ = 0;
  ArmIdle();
  ReadHeaderMore();
}

// Read piece by piece, so that the first byte of a frame starts its deadline.
void FrameSocket::ReadHeaderMore() {
  asio::mutable_buffer rest(header_buf_ + header_got_, kFrameHeaderBytes - header_got_);
  socket_.async_read_some(rest, [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
    if (ec) return self->Fail(SocketError(ec, self->peer_));
    if (self->closed_) return;
    if (self->header_got_ == 0 && n > 0 && self->options_.read_timeout.count() > 0) {
      self->frame_start_ = Clock::now();
      self->ArmDeadline(self->frame_start_ + self->options_.read_timeout, /*idle=*/false);
    }
    self->header_got_ += n;
    if (self->header_got_ < kFrameHeaderBytes) return self->ReadHeaderMore();
    StatusOr<FrameHeader> header = DecodeHeader(self->header_buf_, self->limits_);
    if (!header.ok()) return self->Fail(header.status().WithContext("bad frame from " + self->peer_));
    self->ReadPayload(*header);
  });
}

void FrameSocket::ReadPayload(const FrameHeader& header) {
  in_header_ = header;
  in_total_ = header.payload_len() + kFrameTrailerBytes;
  in_received_ = 0;
  in_hashed_ = 0;
  in_sum_.Begin(header_buf_);
  if (in_total_ > options_.budget_capacity()) {
    return Fail(OutOfRange("frame from " + peer_ + " of " + std::to_string(in_total_) +
                           " bytes is over the server's payload budget of " +
                           std::to_string(options_.budget_capacity())));
  }
  ReserveThen(std::min(in_total_, kInitialPayloadBuffer), &FrameSocket::StartPayload);
}

// Reserves `bytes` more of the server's budget, waiting (polling, within the
// frame's deadline) for room, then runs `then`.
void FrameSocket::ReserveThen(uint64_t bytes, void (FrameSocket::*then)()) {
  if (options_.budget) {
    if (!options_.budget->TryReserve(bytes)) {
      auto wait = std::make_shared<asio::steady_timer>(socket_.get_executor(), std::chrono::milliseconds(5));
      wait->async_wait([self = shared_from_this(), wait, bytes, then](const boost::system::error_code& ec) {
        if (!ec && !self->closed_) self->ReserveThen(bytes, then);
      });
      return;
    }
    reserved_ += bytes;
  }
  (this->*then)();
}

// The first piece of the payload's buffer: at most kInitialPayloadBuffer.
void FrameSocket::StartPayload() {
  in_capacity_ = std::min(in_total_, kInitialPayloadBuffer);
  in_payload_ = AllocatePayload(in_capacity_);
  ReadMore();
}

// The first piece is full: the peer is sending this frame in earnest.
void FrameSocket::GrowPayload() {
  std::shared_ptr<uint8_t> whole = AllocatePayload(in_total_);
  std::memcpy(whole.get(), in_payload_.get(), in_received_);
  in_payload_ = std::move(whole);
  in_capacity_ = in_total_;
  ReadMore();
}

void FrameSocket::ReleaseReservation() {
  if (reserved_ > 0 && options_.budget) options_.budget->Release(reserved_);
  reserved_ = 0;
}

// Reads whatever has arrived and hashes it while it is still in cache and
// while the peer writes the next piece.
void FrameSocket::ReadMore() {
  if (in_received_ == in_capacity_ && in_capacity_ < in_total_) {
    return ReserveThen(in_total_ - in_capacity_, &FrameSocket::GrowPayload);
  }
  asio::mutable_buffer rest(in_payload_.get() + in_received_, in_capacity_ - in_received_);
  socket_.async_read_some(rest, [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
    if (ec) return self->Fail(SocketError(ec, self->peer_));
    if (self->closed_) return;
    self->in_received_ += n;
    const uint64_t hashable = std::min(self->in_received_, self->in_header_.payload_len());
    if (hashable > self->in_hashed_) {
      self->in_sum_.Update(self->in_payload_.get() + self->in_hashed_, hashable - self->in_hashed_);
      self->in_hashed_ = hashable;
    }
    if (self->in_received_ < self->in_total_) return self->ReadMore();
    self->DeliverPayload();
  });
}

void FrameSocket::DeliverPayload() {
  ReleaseReservation();
  InFrame frame;
  Status s = FinishPayload(in_header_, in_sum_.Digest(), std::move(in_payload_), &frame);
  if (!s.ok()) return Fail(s.WithContext("bad frame from " + peer_));
  if (closed_) return;
  ++frames_in_;
  on_frame_(std::move(frame));
  if (!closed_) ReadHeader();
}

// Between frames: closes the connection after idle_timeout unless a request
// of the peer's is still unanswered (a sync push waiting for its round).
void FrameSocket::ArmIdle() {
  if (options_.idle_timeout.count() > 0) {
    ArmDeadline(Clock::now() + options_.idle_timeout, /*idle=*/true);
  } else if (options_.read_timeout.count() > 0) {
    ++timer_generation_;
    timer_.cancel();
  }
}

void FrameSocket::ArmDeadline(Clock::time_point at, bool idle) {
  idle_armed_ = idle;
  if (!idle) frame_deadline_ = at;
  const uint64_t generation = ++timer_generation_;
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
    if (!ec) self->OnTimer(generation);
  });
}

void FrameSocket::OnTimer(uint64_t generation) {
  if (closed_ || generation != timer_generation_) return;
  if (!idle_armed_) {
    // The frame's time: read_timeout, plus what has arrived at
    // min_receive_rate. Bytes that arrived since the timer was set earn
    // their time now; a peer that stalls (a claim it never sends) does not.
    const uint64_t arrived = header_got_ < kFrameHeaderBytes ? header_got_ : in_received_ + kFrameHeaderBytes;
    const double earned = static_cast<double>(arrived) / static_cast<double>(options_.min_receive_rate);
    const Clock::time_point allowed =
        frame_start_ + options_.read_timeout +
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(earned));
    if (allowed > Clock::now()) return ArmDeadline(allowed, /*idle=*/false);
    return Fail(DeadlineExceeded("frame from " + peer_ + " not complete within its deadline (" +
                                 std::to_string(arrived) + " bytes arrived in " +
                                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                    Clock::now() - frame_start_).count()) +
                                 " ms)"));
  }
  if (frames_in_ > frames_out_) return ArmIdle();  // the peer waits for us, not we for it
  Fail(DeadlineExceeded("connection from " + peer_ + " idle for " +
                        std::to_string(options_.idle_timeout.count() / 1000) + " s"));
}

void FrameSocket::Send(OutFrame frame) {
  asio::post(socket_.get_executor(), [self = shared_from_this(), frame = std::move(frame)]() mutable {
    if (self->closed_) return;
    ++self->frames_out_;
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
  out_pieces_.clear();
  out_pieces_.emplace_back(f.header_bytes(), kFrameHeaderBytes);
  if (!f.control.empty()) out_pieces_.emplace_back(f.control.data(), f.control.size());
  if (f.padding() > 0) out_pieces_.emplace_back(kZeros, f.padding());
  for (const ByteSpan& s : f.data) {
    if (s.size > 0) out_pieces_.emplace_back(s.data, s.size);
  }
  out_pieces_.emplace_back(trailer_buf_, kFrameTrailerBytes);
  out_total_ = 0;
  for (const asio::const_buffer& b : out_pieces_) out_total_ += b.size();
  out_written_ = 0;
  out_trailer_ready_ = false;
  out_pending_ = f.pending_checksum;
  out_producer_ = f.data_len() > 0 ? f.producer : nullptr;
  if (out_producer_) {
    // The header, control and padding now; the data as it is produced
    // (ProduceMore, from Pump).
    out_data_begin_ = out_total_ - kFrameTrailerBytes - f.data_len();
    out_produced_ = 0;
    out_sum_.Begin(f.header_bytes());
    ForEachPiece(out_pieces_, kFrameHeaderBytes, out_data_begin_,
                 [this](const uint8_t* p, size_t n) { out_sum_.Update(p, n); });
    out_writable_ = out_data_begin_;
  } else if (out_pending_) {
    // Nothing to hash here: everything but the held-back tail is writable.
    // (Even when the checksum is known already: one write of the whole frame
    // was measured slower for a 1 MiB push than the bulk and then the tail.)
    out_writable_ = std::max<uint64_t>(kFrameHeaderBytes, out_total_ - kFrameTrailerBytes - kHoldBack);
  } else {
    // Hashed whole, then written in as few system calls as the socket
    // allows. (Hashing in steps between smaller writes was measured slower:
    // each write costs a system call, a loopback softirq and a wake-up of
    // the reader, more than the overlap saves.)
    out_sum_.Begin(f.header_bytes());
    ForEachPiece(out_pieces_, kFrameHeaderBytes, out_total_ - kFrameTrailerBytes,
                 [this](const uint8_t* p, size_t n) { out_sum_.Update(p, n); });
    out_writable_ = out_total_ - kFrameTrailerBytes;
    SetTrailer(out_sum_.Digest());
  }
  Pump();
}

// The bytes that may be written: all but the trailer (or but the held-back
// tail), and all of them once the trailer is filled in.
uint64_t FrameSocket::WritableEnd() const { return out_trailer_ready_ ? out_total_ : out_writable_; }

void FrameSocket::SetTrailer(uint64_t checksum) {
  std::memcpy(trailer_buf_, &checksum, sizeof(checksum));
  out_trailer_ready_ = true;
}

// Has the producer fill the next piece of the front frame's data, hashes it,
// and makes it writable; with the last piece, the trailer too.
void FrameSocket::ProduceMore() {
  const uint64_t data_len = out_total_ - kFrameTrailerBytes - out_data_begin_;
  const uint64_t ready = out_producer_->Produce();
  if (ready <= out_produced_ || ready > data_len) {
    return Fail(Internal("frame to " + peer_ + ": its producer made " + std::to_string(ready) + " of " +
                         std::to_string(data_len) + " data bytes after " + std::to_string(out_produced_)));
  }
  ForEachPiece(out_pieces_, out_data_begin_ + out_produced_, out_data_begin_ + ready,
               [this](const uint8_t* p, size_t n) { out_sum_.Update(p, n); });
  out_produced_ = ready;
  out_writable_ = out_data_begin_ + ready;
  if (ready == data_len) {
    SetTrailer(out_sum_.Digest());
    out_producer_.reset();
  }
}

// True once the pending checksum is in the trailer; otherwise Pump resumes
// when it arrives.
bool FrameSocket::AwaitPendingChecksum() {
  uint64_t checksum = 0;
  std::weak_ptr<FrameSocket> weak = shared_from_this();
  const bool ready = out_pending_->GetOrNotify(&checksum, [weak] {
    if (auto self = weak.lock()) asio::post(self->socket_.get_executor(), [self] { self->Pump(); });
  });
  if (ready) SetTrailer(checksum);
  return ready;
}

std::vector<asio::const_buffer> FrameSocket::Gather(uint64_t from, uint64_t to) const {
  std::vector<asio::const_buffer> out;
  ForEachPiece(out_pieces_, from, to, [&out](const uint8_t* p, size_t n) { out.emplace_back(p, n); });
  return out;
}

// Writes the front frame as far as the socket takes it, then waits for the
// socket (or for a pending checksum) and goes on. Every path that returns without finishing leaves exactly one way back in:
// an async_wait, a posted Pump, or the pending checksum's callback.
void FrameSocket::Pump() {
  uint64_t burst = 0;
  while (!closed_ && writing_) {
    if (out_written_ == out_total_) {
      queue_.pop_front();
      out_pending_.reset();
      if (queue_.empty()) {
        writing_ = false;
        return;
      }
      // Let reads and other handlers in between frames.
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->WriteNext(); });
      return;
    }
    if (burst >= kMaxWriteBurst) {
      asio::post(socket_.get_executor(), [self = shared_from_this()] { self->Pump(); });
      return;
    }
    if (WritableEnd() == out_written_) {
      // A frame with a producer (everything produced is written) or with a
      // pending checksum (at its held-back tail).
      if (out_producer_) {
        ProduceMore();
      } else if (!AwaitPendingChecksum()) {
        return;
      }
      continue;
    }
    boost::system::error_code ec;
    const size_t n = socket_.write_some(Gather(out_written_, WritableEnd()), ec);
    if (ec == asio::error::would_block && out_producer_) {
      // The peer has not read what is sent yet: make the next piece meanwhile.
      ProduceMore();
      continue;
    }
    if (ec == asio::error::would_block) {
      socket_.async_wait(asio::ip::tcp::socket::wait_write,
                         [self = shared_from_this()](const boost::system::error_code& ec) {
                           if (ec) return self->Fail(SocketError(ec, self->peer_));
                           self->Pump();
                         });
      return;
    }
    if (ec) return Fail(SocketError(ec, peer_));
    out_written_ += n;
    burst += n;
  }
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
  // Writes are synchronous (Pump), so no system call still reads a queued
  // frame's buffers: all of them can go.
  queue_.clear();
  out_pieces_.clear();
  out_pending_.reset();
  out_producer_.reset();
  in_payload_.reset();
  ReleaseReservation();
  ++timer_generation_;
  timer_.cancel();
}

}  // namespace cairn
