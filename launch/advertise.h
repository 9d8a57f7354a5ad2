// The address a server tells the workers to dial (cluster.advertise,
// `cairn train --advertise`), per server:
//   ""            the bind address, or this host's name when binding 0.0.0.0 / ::
//   "HOST"        that host name or address, for every server
//   "iface:NAME"  the IPv4 address of interface NAME on the server's own host
//                 (each host resolves it itself: hosts with different addresses)
//   "A,B,..."     server i advertises the i-th entry (each one of the above);
//                 as many entries as servers
#pragma once

#include <string>

#include "common/status.h"

namespace cairn {

// What server `index` of `servers` advertises. InvalidArgument for a list
// of the wrong length or an empty entry; NotFound for an interface with no
// IPv4 address here (naming the interfaces there are).
StatusOr<std::string> AdvertisedHost(const std::string& advertise, const std::string& bind, int index, int servers);

// The IPv4 address of interface `name` on this host.
StatusOr<std::string> InterfaceAddress(const std::string& name);

}  // namespace cairn
