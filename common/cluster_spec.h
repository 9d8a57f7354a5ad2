// ClusterSpec: where the parameter servers are and how many workers there are.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace cairn {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return host + ":" + std::to_string(port); }
};

// "host:port" → Endpoint; InvalidArgument naming the text otherwise.
StatusOr<Endpoint> ParseEndpoint(const std::string& text);

struct ClusterSpec {
  std::vector<Endpoint> servers;  // index = server index
  int num_workers = 1;

  int num_servers() const { return static_cast<int>(servers.size()); }
};

}  // namespace cairn
