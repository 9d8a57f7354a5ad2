#include "common/cluster_spec.h"

#include <charconv>

namespace cairn {

StatusOr<Endpoint> ParseEndpoint(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return InvalidArgument("endpoint '" + text + "' is not of the form host:port");
  }
  Endpoint ep;
  ep.host = text.substr(0, colon);
  if (ep.host.size() > 2 && ep.host.front() == '[' && ep.host.back() == ']') ep.host = ep.host.substr(1, ep.host.size() - 2);
  unsigned port = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || ptr != last || port == 0 || port > 65535) {
    return InvalidArgument("endpoint '" + text + "' has an invalid port");
  }
  ep.port = static_cast<uint16_t>(port);
  return ep;
}

}  // namespace cairn
