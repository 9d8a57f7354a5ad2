// AsioTransport: the TCP Transport.
//
// One connection per server, opened on first use and authenticated (the
// handshake is part of the connect, within connect_timeout). Many calls may be in flight
// on a connection at once; replies are matched by request id. A connection
// that fails (or cannot be opened) is retried with exponential backoff, and
// calls not yet answered are re-sent on the new connection, until each call's
// deadline. Re-sent pushes are de-duplicated by the server through their
// (worker, incarnation, sequence) id. A lost connection, the attempts to get
// it back (every 5 s) and its return are logged, so a worker waiting for a
// restarting server says so.
//
// Thread-safe. The EventLoop must outlive the transport; destroying the
// transport fails calls still pending with Cancelled.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "common/cluster_spec.h"
#include "common/event_loop.h"
#include "common/frame.h"
#include "common/handshake.h"
#include "common/transport.h"

namespace cairn {

struct AsioTransportOptions {
  // Who this process is and the job's secret, proved to every server on
  // every connection before a frame is sent (common/handshake.h).
  ClientCredentials credentials;
  FrameLimits limits;                                   // default: 4 MiB control, 1 GiB data
  std::chrono::milliseconds initial_backoff{20};        // first reconnect delay
  std::chrono::milliseconds max_backoff{1000};          // reconnect delay cap
  std::chrono::milliseconds connect_timeout{5000};      // one connection attempt
};

class AsioTransport : public Transport {
 public:
  AsioTransport(EventLoop& loop, std::vector<Endpoint> servers, AsioTransportOptions options = {});
  ~AsioTransport() override;

  int num_servers() const override { return static_cast<int>(channels_.size()); }
  void Call(int server, OutFrame frame, Deadline deadline, Callback done) override;
  uint64_t reconnects() const override { return reconnects_->load(); }

 private:
  class Channel;
  std::vector<std::shared_ptr<Channel>> channels_;  // constant after construction
  std::atomic<uint64_t> next_request_id_{1};
  // Shared with the channels, which may outlive this object briefly.
  std::shared_ptr<std::atomic<uint64_t>> reconnects_ = std::make_shared<std::atomic<uint64_t>>(0);
};

}  // namespace cairn
