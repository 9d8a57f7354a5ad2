#include "launch/advertise.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <set>
#include <vector>

namespace cairn {

StatusOr<std::string> InterfaceAddress(const std::string& name) {
  ifaddrs* all = nullptr;
  if (getifaddrs(&all) != 0) return Unavailable("cannot list this host's network interfaces (getifaddrs)");
  std::string found;
  std::set<std::string> names;
  for (ifaddrs* i = all; i != nullptr; i = i->ifa_next) {
    if (i->ifa_name) names.insert(i->ifa_name);
    if (!found.empty() || !i->ifa_addr || i->ifa_addr->sa_family != AF_INET || name != i->ifa_name) continue;
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text))) found = text;
  }
  freeifaddrs(all);
  if (!found.empty()) return found;
  std::string list;
  for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
  return NotFound("interface '" + name + "' has no IPv4 address on this host (its interfaces: " + list + ")");
}

StatusOr<std::string> AdvertisedHost(const std::string& advertise, const std::string& bind, int index, int servers) {
  std::string entry = advertise;
  if (advertise.find(',') != std::string::npos) {
    std::vector<std::string> entries;
    for (size_t begin = 0;;) {
      const size_t comma = advertise.find(',', begin);
      entries.push_back(advertise.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
      if (comma == std::string::npos) break;
      begin = comma + 1;
    }
    if (static_cast<int>(entries.size()) != servers) {
      return InvalidArgument("cluster.advertise lists " + std::to_string(entries.size()) + " addresses for " +
                             std::to_string(servers) + " server(s): give one per server, in server order");
    }
    entry = entries[index];
    if (entry.empty()) return InvalidArgument("cluster.advertise: server " + std::to_string(index) + "'s entry is empty");
  }
  if (entry.rfind("iface:", 0) == 0) {
    StatusOr<std::string> address = InterfaceAddress(entry.substr(6));
    if (!address.ok()) return address.status().WithContext("cluster.advertise " + entry);
    return address;
  }
  if (!entry.empty()) return entry;
  if (bind != "0.0.0.0" && bind != "::") return bind;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host);
}

}  // namespace cairn
