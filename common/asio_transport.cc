#include "common/asio_transport.h"

#include <map>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include "common/frame_socket.h"
#include "common/log_limiter.h"

namespace cairn {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

struct PendingCall {
  uint64_t id = 0;
  OutFrame frame;
  Transport::Callback done;
  std::unique_ptr<asio::steady_timer> timer;
  Deadline start;
  bool sent = false;
  int attempts = 0;
};

}  // namespace

// All state below is touched only on strand_; the socket and the timers use
// strand_ as their executor, so their handlers run there too.
class AsioTransport::Channel : public std::enable_shared_from_this<Channel> {
 public:
  Channel(asio::io_context& io, int index, Endpoint endpoint, const AsioTransportOptions& options,
          std::shared_ptr<std::atomic<uint64_t>> reconnects)
      : io_(io), strand_(asio::make_strand(io)), index_(index), endpoint_(std::move(endpoint)), options_(options),
        reconnects_(std::move(reconnects)), resolver_(strand_), retry_timer_(strand_), connect_timer_(strand_),
        backoff_(options.initial_backoff) {}

  void Call(std::shared_ptr<PendingCall> call, Deadline deadline) {
    asio::post(strand_, [self = shared_from_this(), call = std::move(call), deadline]() mutable {
      self->Start(std::move(call), deadline);
    });
  }

  void Shutdown() {
    asio::post(strand_, [self = shared_from_this()] {
      self->shutdown_ = true;
      self->retry_timer_.cancel();
      self->connect_timer_.cancel();
      self->resolver_.cancel();
      if (self->socket_) self->socket_->Close(Cancelled("transport shut down"));
      self->socket_.reset();
      if (self->connecting_socket_) {
        boost::system::error_code ignored;
        self->connecting_socket_->close(ignored);
      }
      auto pending = std::move(self->pending_);
      self->pending_.clear();
      for (auto& [id, call] : pending) {
        call->timer->cancel();
        call->done(Cancelled("transport shut down before the reply from " + self->Name()));
      }
    });
  }

 private:
  enum class State { kIdle, kConnecting, kConnected, kBackoff };

  std::string Name() const { return "server " + std::to_string(index_) + " (" + endpoint_.ToString() + ")"; }
  static double SecondsSince(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

  void Start(std::shared_ptr<PendingCall> call, Deadline deadline) {
    if (shutdown_) return call->done(Cancelled("transport shut down"));
    call->timer = std::make_unique<asio::steady_timer>(strand_, deadline);
    call->timer->async_wait([self = shared_from_this(), id = call->id](const boost::system::error_code& ec) {
      if (!ec) self->Expire(id);
    });
    pending_.emplace(call->id, call);
    if (state_ == State::kConnected) {
      SendCall(*call);
    } else if (state_ == State::kIdle) {
      StartConnect();
    }
  }

  void Expire(uint64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    std::shared_ptr<PendingCall> call = it->second;
    pending_.erase(it);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - call->start).count();
    std::string why = FrameTypeName(call->frame.type) + std::string(" to ") + Name() + " got no reply within " +
                      std::to_string(ms) + " ms after " + std::to_string(call->attempts) + " attempt(s)";
    if (!last_error_.ok()) why += "; last error: " + last_error_.message();
    call->done(DeadlineExceeded(why));
  }

  void SendCall(PendingCall& call) {
    call.sent = true;
    ++call.attempts;
    socket_->Send(call.frame);
  }

  void StartConnect() {
    state_ = State::kConnecting;
    const uint64_t gen = ++generation_;
    connecting_socket_ = std::make_shared<tcp::socket>(strand_);
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([self = shared_from_this(), gen](const boost::system::error_code& ec) {
      if (ec || gen != self->generation_ || self->state_ != State::kConnecting) return;
      boost::system::error_code ignored;
      self->resolver_.cancel();
      if (self->connecting_socket_) self->connecting_socket_->close(ignored);
    });
    resolver_.async_resolve(
        endpoint_.host, std::to_string(endpoint_.port),
        [self = shared_from_this(), gen](const boost::system::error_code& ec, tcp::resolver::results_type results) {
          if (gen != self->generation_ || self->shutdown_) return;
          if (ec) return self->ConnectFailed(Unavailable("cannot resolve " + self->Name() + ": " + ec.message()));
          asio::async_connect(*self->connecting_socket_, results,
                              [self, gen](const boost::system::error_code& ec, const tcp::endpoint&) {
                                if (gen != self->generation_ || self->shutdown_) return;
                                if (ec) {
                                  return self->ConnectFailed(
                                      Unavailable("cannot connect to " + self->Name() + ": " + ec.message()));
                                }
                                self->Authenticate(gen);
                              });
        });
  }

  void Authenticate(uint64_t gen) {
    ConnectHandshake(connecting_socket_, options_.credentials, Name(), [self = shared_from_this(), gen](Status s) {
      if (gen != self->generation_ || self->shutdown_) return;
      if (s.code() == StatusCode::kPermissionDenied) {
        // This process and the server disagree about authentication (one
        // has no secret, or the server's proof is wrong): no retry mends
        // that, so every call waiting for the server fails now.
        uint64_t held = 0;
        if (self->auth_log_.Allow(&held)) spdlog::warn("{}", s.message());
        self->ConnectFailed(s);
        auto pending = std::move(self->pending_);
        self->pending_.clear();
        for (auto& [id, call] : pending) {
          call->timer->cancel();
          call->done(s);
        }
        return;
      }
      if (!s.ok()) return self->ConnectFailed(s);
      self->Connected();
    });
  }

  void Connected() {
    connect_timer_.cancel();
    if (ever_connected_) {
      reconnects_->fetch_add(1);
      if (lost_) {
        spdlog::info("reconnected to {} after {:.1f} s", Name(), SecondsSince(lost_at_));
      }
    }
    ever_connected_ = true;
    lost_ = false;
    state_ = State::kConnected;
    backoff_ = options_.initial_backoff;
    socket_ = std::make_shared<FrameSocket>(std::move(*connecting_socket_), options_.limits);
    connecting_socket_.reset();
    const uint64_t gen = generation_;
    std::weak_ptr<Channel> weak = shared_from_this();
    socket_->Start(
        [weak, gen](InFrame frame) {
          if (auto self = weak.lock()) self->OnReply(gen, std::move(frame));
        },
        [weak, gen](const Status& reason) {
          if (auto self = weak.lock()) self->OnClosed(gen, reason);
        });
    for (auto& [id, call] : pending_) {
      if (!call->sent) SendCall(*call);
    }
  }

  void ConnectFailed(const Status& reason) {
    connect_timer_.cancel();
    connecting_socket_.reset();
    last_error_ = reason;
    if (lost_ && Clock::now() >= next_lost_log_) {
      spdlog::warn("still waiting for {} ({:.0f} s since the connection was lost): {}", Name(), SecondsSince(lost_at_),
                   reason.message());
      next_lost_log_ = Clock::now() + std::chrono::seconds(5);
    }
    state_ = State::kIdle;
    if (!pending_.empty()) ScheduleReconnect();
  }

  void OnClosed(uint64_t gen, const Status& reason) {
    if (gen != generation_ || shutdown_) return;
    socket_.reset();
    last_error_ = reason;
    state_ = State::kIdle;
    lost_ = true;
    lost_at_ = Clock::now();
    next_lost_log_ = lost_at_ + std::chrono::seconds(5);
    spdlog::warn("lost the connection to {}: {}; reconnecting (calls wait up to their deadline)", Name(),
                 reason.message());
    for (auto& [id, call] : pending_) call->sent = false;
    if (!pending_.empty()) ScheduleReconnect();
  }

  void ScheduleReconnect() {
    state_ = State::kBackoff;
    retry_timer_.expires_after(backoff_);
    backoff_ = std::min(backoff_ * 2, options_.max_backoff);
    retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->shutdown_ || self->state_ != State::kBackoff) return;
      if (self->pending_.empty()) {
        self->state_ = State::kIdle;
        return;
      }
      self->StartConnect();
    });
  }

  void OnReply(uint64_t gen, InFrame frame) {
    if (gen != generation_) return;
    auto it = pending_.find(frame.header.request_id);
    if (it == pending_.end()) return;  // a reply after its deadline: dropped
    std::shared_ptr<PendingCall> call = it->second;
    if (frame.header.type != (call->frame.type | 0x8000)) {
      socket_->Close(DataLoss(Name() + " answered a " + FrameTypeName(call->frame.type) + " with a frame of type " +
                              std::to_string(frame.header.type)));
      return;
    }
    pending_.erase(it);
    call->timer->cancel();
    call->done(std::move(frame));
  }

  // Constant after construction.
  asio::io_context& io_;
  asio::strand<asio::io_context::executor_type> strand_;
  const int index_;
  const Endpoint endpoint_;
  const AsioTransportOptions options_;
  const std::shared_ptr<std::atomic<uint64_t>> reconnects_;

  // On strand_ only.
  tcp::resolver resolver_;
  asio::steady_timer retry_timer_;
  asio::steady_timer connect_timer_;
  std::shared_ptr<tcp::socket> connecting_socket_;
  std::shared_ptr<FrameSocket> socket_;
  State state_ = State::kIdle;
  uint64_t generation_ = 0;
  bool shutdown_ = false;
  Status last_error_;
  std::chrono::milliseconds backoff_;
  bool ever_connected_ = false;
  bool lost_ = false;                   // a connection was lost and is not back
  Clock::time_point lost_at_, next_lost_log_;
  std::map<uint64_t, std::shared_ptr<PendingCall>> pending_;
  LogLimiter auth_log_;
};

AsioTransport::AsioTransport(EventLoop& loop, std::vector<Endpoint> servers, AsioTransportOptions options) {
  for (size_t i = 0; i < servers.size(); ++i) {
    channels_.push_back(std::make_shared<Channel>(loop.io(), static_cast<int>(i), servers[i], options, reconnects_));
  }
}

AsioTransport::~AsioTransport() {
  for (auto& c : channels_) c->Shutdown();
}

void AsioTransport::Call(int server, OutFrame frame, Deadline deadline, Callback done) {
  if (server < 0 || server >= num_servers()) {
    return done(InvalidArgument("no server " + std::to_string(server) + " in a cluster of " +
                                std::to_string(num_servers())));
  }
  auto call = std::make_shared<PendingCall>();
  call->id = next_request_id_.fetch_add(1);
  frame.request_id = call->id;
  frame.Seal();
  // A large request is hashed here while the I/O thread writes it; a smaller
  // one by the I/O thread as it writes (see kParallelChecksumBytes).
  std::shared_ptr<PendingChecksum> checksum;
  if (frame.data_len() >= kParallelChecksumBytes) {
    checksum = std::make_shared<PendingChecksum>();
    frame.pending_checksum = checksum;
  }
  call->frame = std::move(frame);
  call->done = std::move(done);
  call->start = Clock::now();
  // The channel only reads call->frame from here on, as this thread does:
  // the I/O thread writes the bytes while this one hashes them.
  std::shared_ptr<const PendingCall> posted = call;
  channels_[server]->Call(std::move(call), deadline);
  if (checksum) checksum->Set(posted->frame.Checksum());
}

}  // namespace cairn
