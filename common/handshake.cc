#include "common/handshake.h"

#include <cstring>

#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

namespace cairn {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr char kServerMagic[8] = {'C', 'A', 'I', 'R', 'N', 'H', 'S', '1'};
constexpr char kClientMagic[8] = {'C', 'A', 'I', 'R', 'N', 'H', 'C', '1'};
constexpr char kProofMagic[8] = {'C', 'A', 'I', 'R', 'N', 'H', 'P', '1'};
constexpr uint16_t kHandshakeVersion = 1;
constexpr int32_t kMaxPeerIndex = 1 << 20;
constexpr std::string_view kClientLabel = "cairn handshake v1 client";
constexpr std::string_view kServerLabel = "cairn handshake v1 server";
constexpr size_t kClientMacOffset = kClientHelloBytes - kMacBytes;

template <typename T>
void Put(std::string* out, T v) {  // little-endian, as the frame header
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out->append(b, sizeof(T));
}
template <typename T>
T Get(std::string_view bytes, size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof(T));
  return v;
}

}  // namespace

const char* PeerRoleName(PeerRole role) {
  switch (role) {
    case PeerRole::kWorker: return "worker";
    case PeerRole::kChief: return "chief";
    case PeerRole::kOperator: return "operator";
  }
  return "unknown role";
}

std::string PeerIdentity::ToString() const {
  switch (role) {
    case PeerRole::kWorker: return "worker " + std::to_string(index);
    case PeerRole::kChief: return "the chief";
    case PeerRole::kOperator: return "the operator";
  }
  return "an unknown peer";
}

Status ServerAuth::Check() const {
  if (secret && insecure) return InvalidArgument("a server is given a secret and told to run insecure: pick one");
  if (!secret && !insecure) {
    return FailedPrecondition("a server needs the job's secret (or, to accept anyone, an explicit --insecure)");
  }
  return Status::OK();
}

std::string EncodeServerHello(const ServerHello& h) {
  std::string out(kServerMagic, sizeof(kServerMagic));
  Put<uint16_t>(&out, kHandshakeVersion);
  Put<uint16_t>(&out, h.auth_required ? 1 : 0);
  Put<int32_t>(&out, h.server_index);
  out.append(reinterpret_cast<const char*>(h.nonce.data()), h.nonce.size());
  Put<uint64_t>(&out, 0);
  return out;
}

std::string EncodeClientHello(const ClientHello& h) {
  std::string out(kClientMagic, sizeof(kClientMagic));
  Put<uint8_t>(&out, static_cast<uint8_t>(h.role));
  Put<uint8_t>(&out, 0);
  Put<uint16_t>(&out, 0);
  Put<int32_t>(&out, h.index);
  out.append(reinterpret_cast<const char*>(h.nonce.data()), h.nonce.size());
  out.append(reinterpret_cast<const char*>(h.mac.data()), h.mac.size());
  return out;
}

std::string EncodeServerProof(const Mac& mac) {
  std::string out(kProofMagic, sizeof(kProofMagic));
  out.append(reinterpret_cast<const char*>(mac.data()), mac.size());
  return out;
}

StatusOr<ServerHello> DecodeServerHello(std::string_view b) {
  if (b.size() != kServerHelloBytes || std::memcmp(b.data(), kServerMagic, 8) != 0) {
    return DataLoss("not a Cairn server (its first bytes are not a Cairn handshake)");
  }
  if (Get<uint16_t>(b, 8) != kHandshakeVersion) {
    return DataLoss("the server speaks handshake version " + std::to_string(Get<uint16_t>(b, 8)) + ", this process " +
                    std::to_string(kHandshakeVersion));
  }
  const uint16_t flags = Get<uint16_t>(b, 10);
  if ((flags & ~uint16_t{1}) != 0 || Get<uint64_t>(b, 48) != 0) return DataLoss("malformed server hello");
  ServerHello h;
  h.auth_required = (flags & 1) != 0;
  h.server_index = Get<int32_t>(b, 12);
  std::memcpy(h.nonce.data(), b.data() + 16, kNonceBytes);
  return h;
}

StatusOr<ClientHello> DecodeClientHello(std::string_view b) {
  if (b.size() != kClientHelloBytes || std::memcmp(b.data(), kClientMagic, 8) != 0) {
    return DataLoss("not a Cairn client hello");
  }
  if (Get<uint8_t>(b, 9) != 0 || Get<uint16_t>(b, 10) != 0) return DataLoss("malformed client hello");
  const uint8_t role = Get<uint8_t>(b, 8);
  if (role < 1 || role > 3) return InvalidArgument("client hello with unknown role " + std::to_string(role));
  ClientHello h;
  h.role = static_cast<PeerRole>(role);
  h.index = Get<int32_t>(b, 12);
  if (h.index < -1 || h.index >= kMaxPeerIndex) {
    return InvalidArgument("client hello with index " + std::to_string(h.index) + " out of range");
  }
  std::memcpy(h.nonce.data(), b.data() + 16, kNonceBytes);
  std::memcpy(h.mac.data(), b.data() + kClientMacOffset, kMacBytes);
  return h;
}

StatusOr<Mac> DecodeServerProof(std::string_view b) {
  if (b.size() != kServerProofBytes || std::memcmp(b.data(), kProofMagic, 8) != 0) {
    return DataLoss("malformed server proof");
  }
  Mac mac;
  std::memcpy(mac.data(), b.data() + 8, kMacBytes);
  return mac;
}

Mac HandshakeMac(const Secret& secret, std::string_view label, std::string_view a, std::string_view b) {
  Mac mac{};
  unsigned int len = 0;
  std::string message;
  message.reserve(label.size() + a.size() + b.size());
  message.append(label).append(a).append(b);
  HMAC(EVP_sha256(), secret.bytes().data(), static_cast<int>(secret.bytes().size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), &len);
  return mac;
}

bool MacEquals(const Mac& x, const Mac& y) { return CRYPTO_memcmp(x.data(), y.data(), kMacBytes) == 0; }

Nonce RandomNonce() {
  Nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
    // Never seen on Linux (getrandom); a fixed nonce would allow replays.
    std::abort();
  }
  return n;
}

ServerHandshake::ServerHandshake(const ServerAuth& auth, int32_t server_index) : auth_(auth) {
  ServerHello h;
  h.auth_required = !auth_.insecure;
  h.server_index = server_index;
  h.nonce = RandomNonce();
  hello_ = EncodeServerHello(h);
}

StatusOr<PeerIdentity> ServerHandshake::OnClientHello(std::string_view bytes, std::string* proof) const {
  ASSIGN_OR_RETURN(ClientHello c, DecodeClientHello(bytes));
  PeerIdentity peer;
  peer.role = c.role;
  peer.index = c.role == PeerRole::kOperator ? -1 : c.index;
  if (c.role == PeerRole::kChief) peer.index = 0;
  if (auth_.insecure) {
    *proof = EncodeServerProof(Mac{});
    return peer;
  }
  const Mac expected = HandshakeMac(*auth_.secret, kClientLabel, hello_, bytes.substr(0, kClientMacOffset));
  if (!MacEquals(expected, c.mac)) return PermissionDenied("the peer does not hold the job's secret");
  *proof = EncodeServerProof(HandshakeMac(*auth_.secret, kServerLabel, hello_, bytes));
  peer.authenticated = true;
  return peer;
}

ClientHandshake::ClientHandshake(ClientCredentials credentials) : credentials_(std::move(credentials)) {}

StatusOr<std::string> ClientHandshake::OnServerHello(std::string_view bytes) {
  ASSIGN_OR_RETURN(ServerHello s, DecodeServerHello(bytes));
  if (!s.auth_required && credentials_.secret) {
    return PermissionDenied("the server runs without authentication (--insecure) but this process has the "
                            "job's secret: refusing a server that cannot prove it holds it");
  }
  if (s.auth_required && !credentials_.secret) {
    return PermissionDenied("the server requires the job's secret and this process has none "
                            "(--secret-file, or the cluster file's secret_file)");
  }
  server_hello_ = std::string(bytes);
  ClientHello c;
  c.role = credentials_.role;
  c.index = credentials_.role == PeerRole::kOperator ? -1 : credentials_.index;
  c.nonce = RandomNonce();
  client_hello_ = EncodeClientHello(c);
  if (credentials_.secret) {
    const Mac mac = HandshakeMac(*credentials_.secret, kClientLabel, server_hello_,
                                 std::string_view(client_hello_).substr(0, kClientMacOffset));
    std::memcpy(client_hello_.data() + kClientMacOffset, mac.data(), kMacBytes);
  }
  return client_hello_;
}

Status ClientHandshake::OnServerProof(std::string_view bytes) const {
  ASSIGN_OR_RETURN(Mac mac, DecodeServerProof(bytes));
  if (!credentials_.secret) return Status::OK();
  const Mac expected = HandshakeMac(*credentials_.secret, kServerLabel, server_hello_, client_hello_);
  if (!MacEquals(expected, mac)) return PermissionDenied("the server's proof does not match the job's secret");
  return Status::OK();
}

namespace {

// One server-side handshake in flight: its buffers, timer and callback.
struct Accepting : std::enable_shared_from_this<Accepting> {
  Accepting(std::shared_ptr<tcp::socket> s, const ServerAuth& auth, int32_t index,
            std::function<void(StatusOr<PeerIdentity>)> d)
      : socket(std::move(s)), handshake(auth, index), timer(socket->get_executor()), done(std::move(d)) {}

  void Finish(StatusOr<PeerIdentity> result) {
    if (!done) return;
    timer.cancel();
    auto d = std::move(done);
    done = nullptr;
    d(std::move(result));
  }
  void Fail(const Status& s) {
    boost::system::error_code ignored;
    socket->close(ignored);
    Finish(s);
  }

  std::shared_ptr<tcp::socket> socket;
  ServerHandshake handshake;
  asio::steady_timer timer;
  std::function<void(StatusOr<PeerIdentity>)> done;
  char in[kClientHelloBytes];
  std::string proof;
  PeerIdentity peer;
};

struct Connecting : std::enable_shared_from_this<Connecting> {
  Connecting(std::shared_ptr<tcp::socket> s, ClientCredentials c, std::string name, std::function<void(Status)> d)
      : socket(std::move(s)), handshake(std::move(c)), server(std::move(name)), done(std::move(d)) {}
  void Finish(const Status& s) {
    if (!done) return;
    auto d = std::move(done);
    done = nullptr;
    d(s);
  }
  std::shared_ptr<tcp::socket> socket;
  ClientHandshake handshake;
  std::string server;
  std::function<void(Status)> done;
  char in[kServerHelloBytes];
  char proof[kServerProofBytes];
  std::string out;
};

}  // namespace

void AcceptHandshake(std::shared_ptr<tcp::socket> socket, const ServerAuth& auth, int32_t server_index,
                     std::chrono::milliseconds timeout, std::function<void(StatusOr<PeerIdentity>)> done) {
  auto a = std::make_shared<Accepting>(std::move(socket), auth, server_index, std::move(done));
  a->timer.expires_after(timeout);
  a->timer.async_wait([a, timeout](const boost::system::error_code& ec) {
    if (ec) return;
    a->Fail(DeadlineExceeded("no handshake within " + std::to_string(timeout.count()) + " ms"));
  });
  asio::async_write(*a->socket, asio::buffer(a->handshake.hello()), [a](const boost::system::error_code& ec, size_t) {
    if (ec) return a->Fail(Unavailable("sending the server hello: " + ec.message()));
    asio::async_read(*a->socket, asio::buffer(a->in), [a](const boost::system::error_code& ec, size_t) {
      if (ec) return a->Fail(Unavailable("reading the client hello: " + ec.message()));
      StatusOr<PeerIdentity> peer = a->handshake.OnClientHello(std::string_view(a->in, sizeof(a->in)), &a->proof);
      if (!peer.ok()) return a->Fail(peer.status());
      a->peer = *peer;
      asio::async_write(*a->socket, asio::buffer(a->proof), [a](const boost::system::error_code& ec, size_t) {
        if (ec) return a->Fail(Unavailable("sending the server proof: " + ec.message()));
        a->Finish(a->peer);
      });
    });
  });
}

void ConnectHandshake(std::shared_ptr<tcp::socket> socket, ClientCredentials credentials, std::string server_name,
                      std::function<void(Status)> done) {
  auto c = std::make_shared<Connecting>(std::move(socket), std::move(credentials), std::move(server_name),
                                        std::move(done));
  asio::async_read(*c->socket, asio::buffer(c->in), [c](const boost::system::error_code& ec, size_t) {
    if (ec) return c->Finish(Unavailable("handshake with " + c->server + ": " + ec.message()));
    StatusOr<std::string> hello = c->handshake.OnServerHello(std::string_view(c->in, sizeof(c->in)));
    if (!hello.ok()) return c->Finish(hello.status().WithContext("handshake with " + c->server));
    c->out = std::move(*hello);
    asio::async_write(*c->socket, asio::buffer(c->out), [c](const boost::system::error_code& ec, size_t) {
      if (ec) return c->Finish(Unavailable("handshake with " + c->server + ": " + ec.message()));
      asio::async_read(*c->socket, asio::buffer(c->proof), [c](const boost::system::error_code& ec, size_t) {
        if (ec == asio::error::eof || ec == asio::error::connection_reset) {
          // A server closes a peer whose hello fails its check, silently;
          // but so does one that is stopping: worth retrying.
          return c->Finish(Unavailable("handshake with " + c->server +
                                       ": the server closed the connection (is this process's secret the "
                                       "job's secret?)"));
        }
        if (ec) return c->Finish(Unavailable("handshake with " + c->server + ": " + ec.message()));
        Status s = c->handshake.OnServerProof(std::string_view(c->proof, sizeof(c->proof)));
        c->Finish(s.WithContext("handshake with " + c->server));
      });
    });
  });
}

}  // namespace cairn
