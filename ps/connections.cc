#include "ps/connections.h"

#include <sys/resource.h>

#include <algorithm>
#include <future>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include "common/messages.h"

namespace cairn {
namespace asio = boost::asio;
using asio::ip::tcp;

OutFrame ReplyTo(const FrameHeader& request, std::string control) {
  OutFrame reply;
  reply.type = request.type | 0x8000;
  reply.request_id = request.request_id;
  reply.control = std::move(control);
  return reply;
}

void Responder::Reply(std::string control) const { Send(ReplyTo(header_, std::move(control))); }

void Responder::Fail(const Status& status) const {
  if (stats_) ++stats_->requests_failed;
  auto c = conn_.lock();
  // Unavailable asks the peer to try again (a worker declaring before the
  // chief has created): expected while a job starts, not worth a warning.
  spdlog::log(status.code() == StatusCode::kUnavailable ? spdlog::level::debug : spdlog::level::warn,
              "server {}: {} from {} failed: {}", server_index_, FrameTypeName(header_.type),
              c ? c->peer() : std::string("a closed connection"), status.ToString());
  Reply(EncodeMessage(StatusReply{WireStatus::From(status)}));
}

void Responder::Finish(const Status& status) const {
  if (!status.ok()) return Fail(status);
  Reply(EncodeMessage(StatusReply{}));
}

void Responder::Send(OutFrame reply) const {
  auto c = conn_.lock();
  if (!c) return;
  reply.Seal();
  c->Send(std::move(reply));
}

int EffectiveMaxConnections(int wanted) {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return wanted;
  // Databases (a snapshot's files), the log, clients of this process's own.
  const int64_t reserve = std::max<int64_t>(64, static_cast<int64_t>(rl.rlim_cur) / 4);
  const int64_t fits = static_cast<int64_t>(rl.rlim_cur) - reserve;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(wanted, fits)));
}

Connections::Connections(EventLoop& loop, int server_index, FrameLimits limits, ServerAuth auth,
                         ConnectionLimits conn_limits, Dispatch dispatch)
    : loop_(loop),
      index_(server_index),
      limits_(limits),
      auth_(std::move(auth)),
      conn_limits_(conn_limits),
      max_connections_(EffectiveMaxConnections(conn_limits.max_connections)),
      budget_(std::make_shared<PayloadBudget>(conn_limits.max_pending_payload_bytes)),
      dispatch_(std::move(dispatch)),
      acceptor_(asio::make_strand(loop.io())),
      accept_timer_(acceptor_.get_executor()) {}

uint64_t Connections::open_connections() const {
  MutexLock lock(mu_);
  return open_.size() + handshaking_.size();
}

Status Connections::Listen(const std::string& bind_address, uint16_t port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(bind_address, ec);
  if (ec) return InvalidArgument("bind address '" + bind_address + "' is not an IP address");
  tcp::endpoint ep(address, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("server " + std::to_string(index_) + " cannot listen on " + bind_address + ":" +
                       std::to_string(port) + ": " + ec.message());
  }
  auto local = acceptor_.local_endpoint(ec);
  endpoint_ = Endpoint{local.address().to_string(), local.port()};
  if (max_connections_ < conn_limits_.max_connections) {
    spdlog::info("server {}: at most {} connections (the file-descriptor limit; {} asked for)", index_,
                 max_connections_, conn_limits_.max_connections);
  }
  if (auth_.insecure) {
    spdlog::warn("server {}: running without authentication (--insecure): anyone who can reach {} can read and "
                 "change every variable",
                 index_, endpoint_.ToString());
  }
  Accept();
  return Status::OK();
}

void Connections::Stop() {
  std::set<std::shared_ptr<FrameSocket>> open;
  std::set<std::shared_ptr<tcp::socket>> handshaking;
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    open.swap(open_);
    handshaking.swap(handshaking_);
  }
  for (auto& h : handshaking) {
    asio::post(h->get_executor(), [h] {
      boost::system::error_code ignored;
      h->close(ignored);
    });
  }
  // The port is free once Stop returns (a replacement may bind it at once).
  // The close runs on the acceptor's strand; if no loop thread gets to it
  // within 5 s (Stop called from the only one, say), it still happens, later.
  auto closed = std::make_shared<std::promise<void>>();
  std::future<void> done = closed->get_future();
  asio::dispatch(acceptor_.get_executor(), [self = shared_from_this(), closed] {
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    self->accept_timer_.cancel();
    closed->set_value();
  });
  done.wait_for(std::chrono::seconds(5));
  for (auto& c : open) c->Close(Cancelled("server stopping"));
}

void Connections::Accept() {
  acceptor_.async_accept(asio::make_strand(loop_.io()), [self = shared_from_this()](
                                                             const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      self->accept_backoff_ = std::chrono::milliseconds(0);
      self->Adopt(std::move(socket));
      return self->AcceptAgain(std::chrono::milliseconds(0));
    }
    // Out of file descriptors, say: retrying at once would spin a core, and
    // logging every retry would flood the log.
    ++self->stats_->accept_errors;
    self->accept_backoff_ = std::clamp(self->accept_backoff_ * 2, std::chrono::milliseconds(10),
                                       std::chrono::milliseconds(1000));
    uint64_t held = 0;
    if (self->accept_log_.Allow(&held)) {
      spdlog::warn("server {}: accept failed: {}; retrying in {} ms ({} more failures not logged)", self->index_,
                   ec.message(), self->accept_backoff_.count(), held);
    }
    self->AcceptAgain(self->accept_backoff_);
  });
}

void Connections::AcceptAgain(std::chrono::milliseconds delay) {
  {
    MutexLock lock(mu_);
    if (stopped_) return;
  }
  if (delay.count() == 0) return Accept();
  accept_timer_.expires_after(delay);
  accept_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->AcceptAgain(std::chrono::milliseconds(0));
  });
}

void Connections::Adopt(tcp::socket socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  const std::string from = ec ? std::string("<unknown peer>") : ep.address().to_string() + ":" + std::to_string(ep.port());
  auto pending = std::make_shared<tcp::socket>(std::move(socket));
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    if (static_cast<int64_t>(open_.size() + handshaking_.size()) >= max_connections_) {
      ++stats_->connections_refused;
      uint64_t held = 0;
      if (refused_log_.Allow(&held)) {
        spdlog::warn("server {}: refused a connection from {}: {} connections open, the limit ({} more refusals not "
                     "logged)",
                     index_, from, max_connections_, held);
      }
      pending->close(ec);
      return;
    }
    handshaking_.insert(pending);
  }
  AcceptHandshake(pending, auth_, index_, conn_limits_.handshake_timeout,
                  [self = shared_from_this(), pending, from](StatusOr<PeerIdentity> peer) {
                    self->Authenticated(pending, peer, from);
                  });
}

void Connections::Authenticated(const std::shared_ptr<tcp::socket>& socket, const StatusOr<PeerIdentity>& peer,
                                const std::string& from) {
  {
    MutexLock lock(mu_);
    handshaking_.erase(socket);
    if (stopped_) return;
  }
  if (!peer.ok()) {
    ++stats_->handshakes_failed;
    uint64_t held = 0;
    if (handshake_log_.Allow(&held)) {
      spdlog::warn("server {}: closed a connection from {} before reading from it: {} ({} more not logged)", index_,
                   from, peer.status().message(), held);
    }
    boost::system::error_code ignored;
    socket->close(ignored);
    return;
  }
  FrameSocketOptions o;
  o.limits = limits_;
  o.idle_timeout = conn_limits_.idle_timeout;
  o.read_timeout = conn_limits_.read_timeout;
  o.min_receive_rate = conn_limits_.min_receive_rate;
  o.budget = budget_;
  auto conn = std::make_shared<FrameSocket>(std::move(*socket), o);
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    open_.insert(conn);
  }
  ++stats_->connections_accepted;
  std::weak_ptr<FrameSocket> weak = conn;
  conn->Start(
      [self = shared_from_this(), weak, identity = *peer](InFrame frame) {
        Responder respond(weak, frame.header, self->index_, self->stats_);
        Request request{std::move(frame), std::move(respond), identity};
        asio::post(self->loop_.io(), [self, request = std::move(request)]() mutable {
          if (request.respond.connection()) self->dispatch_(std::move(request));
        });
      },
      [self = shared_from_this(), weak](const Status& reason) {
        if (auto c = weak.lock()) self->Closed(c, reason);
      });
}

void Connections::Closed(const std::shared_ptr<FrameSocket>& conn, const Status& reason) {
  const bool malformed = reason.code() == StatusCode::kDataLoss || reason.code() == StatusCode::kInvalidArgument ||
                         reason.code() == StatusCode::kOutOfRange;
  const bool late = reason.code() == StatusCode::kDeadlineExceeded;
  if (malformed) ++stats_->frames_rejected;
  if (late) ++stats_->connections_timed_out;
  uint64_t held = 0;
  if ((malformed || late) && dropped_log_.Allow(&held)) {
    spdlog::warn("server {}: dropped connection: {} ({} more not logged)", index_, reason.message(), held);
  }
  MutexLock lock(mu_);
  open_.erase(conn);
}

}  // namespace cairn
