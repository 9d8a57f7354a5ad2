// The secret every server and client of one test process shares, so tests
// run the real handshake (common/handshake.h) on every connection.
#pragma once

#include <memory>

#include "common/asio_transport.h"
#include "common/handshake.h"
#include "common/secret.h"
#include "ps/local_cluster.h"
#include "ps/server.h"

namespace cairn {

inline std::shared_ptr<const Secret> TestSecret() {
  static const std::shared_ptr<const Secret> secret = *Secret::Generate();
  return secret;
}

inline ServerAuth TestServerAuth() { return ServerAuth{TestSecret(), false}; }

// As the chief unless told otherwise: tests create, snapshot and restore.
inline ClientCredentials TestCredentials(PeerRole role = PeerRole::kChief, int index = 0) {
  return ClientCredentials{TestSecret(), role, index};
}
inline AsioTransportOptions TestTransportOptions(PeerRole role = PeerRole::kChief, int index = 0) {
  AsioTransportOptions o;
  o.credentials = TestCredentials(role, index);
  return o;
}

// Options with the test secret, unless they set a secret or insecure.
inline ServerOptions WithTestAuth(ServerOptions o) {
  if (!o.auth.secret && !o.auth.insecure) o.auth = TestServerAuth();
  return o;
}
inline LocalClusterOptions WithTestAuth(LocalClusterOptions o) {
  if (!o.auth.secret && !o.auth.insecure) o.auth = TestServerAuth();
  return o;
}

}  // namespace cairn
