// LocalCluster: S parameter servers as part of this process, listening on
// loopback (or the given address) over real TCP. Used by `cairn train
// --local`, the benchmarks and the tests: the code path is the real one.
#pragma once

#include <memory>
#include <vector>

#include "common/cluster_spec.h"
#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "common/handshake.h"
#include "common/status.h"
#include "ps/server.h"

namespace cairn {

struct LocalClusterOptions {
  int servers = 1;
  std::string bind_address = "127.0.0.1";
  FrameLimits limits;
  SnapshotWriteOptions snapshot;  // each server's (file system, crash points)
  // Neither a secret nor insecure: a random secret is made in memory (as
  // `cairn train --local` does); secret() gives it to clients.
  ServerAuth auth;
  ConnectionLimits connections;
  std::string model_dir;          // where the servers may write and restore snapshots
};

class LocalCluster {
 public:
  // `loop` must outlive the cluster.
  static StatusOr<std::unique_ptr<LocalCluster>> Start(EventLoop& loop, const LocalClusterOptions& options);
  ~LocalCluster();  // stops every server

  std::vector<Endpoint> endpoints() const;
  Server& server(int i) { return *servers_[i]; }
  int num_servers() const { return static_cast<int>(servers_.size()); }
  const ServerAuth& auth() const { return auth_; }
  // Transport options for a client of this cluster with `role` and `index`.
  AsioTransportOptions ClientOptions(PeerRole role = PeerRole::kChief, int index = 0) const;

 private:
  ServerAuth auth_;
  std::vector<std::unique_ptr<Server>> servers_;
};

}  // namespace cairn
