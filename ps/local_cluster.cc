#include "ps/local_cluster.h"

namespace cairn {

StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(EventLoop& loop, const LocalClusterOptions& options) {
  auto cluster = std::unique_ptr<LocalCluster>(new LocalCluster());
  cluster->auth_ = options.auth;
  if (!cluster->auth_.secret && !cluster->auth_.insecure) {
    ASSIGN_OR_RETURN(cluster->auth_.secret, Secret::Generate());
  }
  for (int i = 0; i < options.servers; ++i) {
    ServerOptions so;
    so.index = i;
    so.bind_address = options.bind_address;
    so.limits = options.limits;
    so.snapshot = options.snapshot;
    so.auth = cluster->auth_;
    so.connections = options.connections;
    so.model_dir = options.model_dir;
    ASSIGN_OR_RETURN(auto server, Server::Start(loop, so));
    cluster->servers_.push_back(std::move(server));
  }
  return cluster;
}

LocalCluster::~LocalCluster() {
  for (auto& s : servers_) s->Stop();
}

AsioTransportOptions LocalCluster::ClientOptions(PeerRole role, int index) const {
  AsioTransportOptions o;
  o.credentials = ClientCredentials{auth_.secret, role, index};
  return o;
}

std::vector<Endpoint> LocalCluster::endpoints() const {
  std::vector<Endpoint> out;
  for (const auto& s : servers_) out.push_back(s->endpoint());
  return out;
}

}  // namespace cairn
