// The connection handshake: mutual authentication with the job's shared
// secret, before a server parses anything else from a connection.
//
//   server -> client  ServerHello  (56 bytes)
//     "CAIRNHS1"  u16 version  u16 flags (bit 0: authentication required)
//     i32 server index  32-byte server nonce  u64 reserved (0)
//   client -> server  ClientHello  (80 bytes)
//     "CAIRNHC1"  u8 role  u8 reserved  u16 reserved  i32 index
//     32-byte client nonce  32-byte client MAC
//   server -> client  ServerProof  (40 bytes)
//     "CAIRNHP1"  32-byte server MAC
//
//   client MAC = HMAC-SHA256(secret, "cairn handshake v1 client" | ServerHello | ClientHello[0, 48))
//   server MAC = HMAC-SHA256(secret, "cairn handshake v1 server" | ServerHello | ClientHello)
//
// Each side's MAC covers the other side's fresh nonce, so a recorded
// handshake replayed to a new connection fails; the two labels differ, so
// one side's MAC reflected back is no proof either; the role and index are
// covered, so they cannot be changed on the way. MACs are compared in
// constant time. A server sends its proof only after the client's checks
// out, and closes a failing connection without a word: a peer without the
// secret learns nothing but the server's index.
//
// Roles: the chief (worker 0) and the operator (`cairn` tools) may create
// variables, snapshot and restore; a worker may only declare what the chief
// created. Every process of a job holds the same secret, so a role is what
// an authenticated peer says it is: the check keeps a worker's code from a
// chief's operation; it is no defence against a holder of the secret.
//
// With no secret (ServerAuth::insecure; ClientCredentials without one) the
// same messages flow with zero MACs: a server started --insecure accepts
// anyone, and a client with a secret refuses such a server (it cannot prove
// itself).
//
// The codec below is pure and fuzzed; AcceptHandshake / ConnectHandshake
// run it on a socket.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "common/secret.h"
#include "common/status.h"

namespace cairn {

enum class PeerRole : uint8_t { kWorker = 1, kChief = 2, kOperator = 3 };
const char* PeerRoleName(PeerRole role);

// Who is at the other end of a server's connection, as its handshake said.
struct PeerIdentity {
  PeerRole role = PeerRole::kWorker;
  int32_t index = -1;           // the worker's index (chief: 0); -1 for the operator
  bool authenticated = false;   // false only on a server started insecure
  bool may_control() const { return role == PeerRole::kChief || role == PeerRole::kOperator; }
  std::string ToString() const;  // "worker 3", "the chief", "the operator"
};

struct ClientCredentials {
  std::shared_ptr<const Secret> secret;  // null: connect without one (only to a server started insecure)
  PeerRole role = PeerRole::kWorker;
  int32_t index = 0;
};

struct ServerAuth {
  std::shared_ptr<const Secret> secret;  // required unless insecure
  bool insecure = false;                 // accept peers without checking them (logged at start)
  // OK if exactly one of a secret and `insecure` is set.
  Status Check() const;
};

constexpr size_t kServerHelloBytes = 56;
constexpr size_t kClientHelloBytes = 80;
constexpr size_t kServerProofBytes = 40;
constexpr size_t kNonceBytes = 32;
constexpr size_t kMacBytes = 32;
using Nonce = std::array<uint8_t, kNonceBytes>;
using Mac = std::array<uint8_t, kMacBytes>;

struct ServerHello {
  bool auth_required = true;
  int32_t server_index = 0;
  Nonce nonce{};
};
struct ClientHello {
  PeerRole role = PeerRole::kWorker;
  int32_t index = 0;
  Nonce nonce{};
  Mac mac{};
};

std::string EncodeServerHello(const ServerHello& hello);
std::string EncodeClientHello(const ClientHello& hello);
std::string EncodeServerProof(const Mac& mac);
// DataLoss on a wrong size, magic, version or reserved field; InvalidArgument
// on an unknown role or an index out of [-1, 2^20).
StatusOr<ServerHello> DecodeServerHello(std::string_view bytes);
StatusOr<ClientHello> DecodeClientHello(std::string_view bytes);
StatusOr<Mac> DecodeServerProof(std::string_view bytes);

// HMAC-SHA256(secret, label | a | b).
Mac HandshakeMac(const Secret& secret, std::string_view label, std::string_view a, std::string_view b);
bool MacEquals(const Mac& x, const Mac& y);  // constant time
Nonce RandomNonce();

// The server's side of one handshake, without I/O.
class ServerHandshake {
 public:
  ServerHandshake(const ServerAuth& auth, int32_t server_index);
  const std::string& hello() const { return hello_; }  // send first
  // Checks the client's hello. On success, `proof` is the reply to send and
  // the peer's identity is returned; on failure the connection must be
  // closed without a reply (the status is for the server's log).
  StatusOr<PeerIdentity> OnClientHello(std::string_view bytes, std::string* proof) const;

 private:
  const ServerAuth auth_;
  std::string hello_;
};

// The client's side of one handshake, without I/O.
class ClientHandshake {
 public:
  explicit ClientHandshake(ClientCredentials credentials);
  // Checks the server's hello and returns the client hello to send.
  StatusOr<std::string> OnServerHello(std::string_view bytes);
  // Checks the server's proof (when it has a secret): OK means mutual.
  Status OnServerProof(std::string_view bytes) const;

 private:
  const ClientCredentials credentials_;
  std::string server_hello_, client_hello_;
};

// Runs the server's side on `socket`, which must use a strand as its
// executor; `done` runs once on it. Past `timeout` the socket is closed and
// `done` sees DeadlineExceeded.
void AcceptHandshake(std::shared_ptr<boost::asio::ip::tcp::socket> socket, const ServerAuth& auth,
                     int32_t server_index, std::chrono::milliseconds timeout,
                     std::function<void(StatusOr<PeerIdentity>)> done);
// Runs the client's side on a connected `socket` (its executor a strand);
// `done` runs once on it. The caller's connect timeout bounds it (close the
// socket to stop it).
void ConnectHandshake(std::shared_ptr<boost::asio::ip::tcp::socket> socket, ClientCredentials credentials,
                      std::string server_name, std::function<void(Status)> done);

}  // namespace cairn
