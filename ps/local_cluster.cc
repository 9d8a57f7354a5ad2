#include "ps/local_cluster.h"

namespace cairn {

StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(EventLoop& loop, const LocalClusterOptions& options) {
  auto cluster = std::unique_ptr<LocalCluster>(new LocalCluster());
  for (int i = 0; i < options.servers; ++i) {
    ServerOptions so;
    so.index = i;
    so.bind_address = options.bind_address;
    so.limits = options.limits;
    so.snapshot = options.snapshot;
    ASSIGN_OR_RETURN(auto server, Server::Start(loop, so));
    cluster->servers_.push_back(std::move(server));
  }
  return cluster;
}

LocalCluster::~LocalCluster() {
  for (auto& s : servers_) s->Stop();
}

std::vector<Endpoint> LocalCluster::endpoints() const {
  std::vector<Endpoint> out;
  for (const auto& s : servers_) out.push_back(s->endpoint());
  return out;
}

}  // namespace cairn
