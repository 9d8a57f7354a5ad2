#include "ps/connections.h"

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
  spdlog::warn("server {}: {} from {} failed: {}", server_index_, FrameTypeName(header_.type),
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

Connections::Connections(EventLoop& loop, int server_index, FrameLimits limits, Dispatch dispatch)
    : loop_(loop),
      index_(server_index),
      limits_(limits),
      dispatch_(std::move(dispatch)),
      acceptor_(asio::make_strand(loop.io())),
      accept_timer_(acceptor_.get_executor()) {}

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
  Accept();
  return Status::OK();
}

void Connections::Stop() {
  std::set<std::shared_ptr<FrameSocket>> open;
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    open.swap(open_);
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
      self->Adopt(std::move(socket));
      return self->AcceptAgain(std::chrono::milliseconds(0));
    }
    // Out of file descriptors, say: retrying at once would spin a core.
    spdlog::warn("server {}: accept failed: {}; retrying in 100 ms", self->index_, ec.message());
    self->AcceptAgain(std::chrono::milliseconds(100));
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
  auto conn = std::make_shared<FrameSocket>(std::move(socket), limits_);
  {
    MutexLock lock(mu_);
    if (stopped_) return;
    open_.insert(conn);
  }
  ++stats_->connections_accepted;
  std::weak_ptr<FrameSocket> weak = conn;
  conn->Start(
      [self = shared_from_this(), weak](InFrame frame) {
        Responder respond(weak, frame.header, self->index_, self->stats_);
        Request request{std::move(frame), std::move(respond)};
        asio::post(self->loop_.io(), [self, request = std::move(request)]() mutable {
          if (request.respond.connection()) self->dispatch_(std::move(request));
        });
      },
      [self = shared_from_this(), weak](const Status& reason) {
        if (auto c = weak.lock()) self->Closed(c, reason);
      });
}

void Connections::Closed(const std::shared_ptr<FrameSocket>& conn, const Status& reason) {
  if (reason.code() == StatusCode::kDataLoss || reason.code() == StatusCode::kInvalidArgument ||
      reason.code() == StatusCode::kOutOfRange) {
    ++stats_->frames_rejected;
    spdlog::warn("server {}: dropped connection: {}", index_, reason.message());
  }
  MutexLock lock(mu_);
  open_.erase(conn);
}

}  // namespace cairn
