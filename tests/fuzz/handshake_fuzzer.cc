// Fuzzes the connection handshake (common/handshake.h): the three message
// decoders, and both sides' state machines fed arbitrary bytes, with a fixed
// secret (Secret::FromBytes) or none.
//
// Input: one mode byte, then the mode's bytes.
//   mode & 7 == 0/1/2  DecodeServerHello / DecodeClientHello / DecodeServerProof
//   mode & 7 == 3      ServerHandshake::OnClientHello(bytes)
//   mode & 7 == 4      ClientHandshake::OnServerHello(bytes[0, 56)), then
//                      OnServerProof(the rest)
//   mode & 7 >= 5      a whole handshake between the two sides, with the
//                      bytes' bit flips applied to the messages in transit
// Bit 3 of the mode ("sign"): in modes 3 and 4 the harness writes the MAC a
// holder of the secret would, so the fuzzer reaches the checks behind it.
//
// Properties: a message that decodes re-encodes to exactly its bytes; a
// client hello or server proof whose MAC the harness did not sign is never
// accepted by a side that holds the secret; a signed one is accepted
// whenever it decodes; a tampered handshake never completes.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/handshake.h"
#include "tests/fuzz/fuzz_check.h"

namespace cairn {
namespace {

// The MAC labels and layout handshake.h documents.
constexpr std::string_view kClientLabel = "cairn handshake v1 client";
constexpr std::string_view kServerLabel = "cairn handshake v1 server";
constexpr size_t kClientMacOffset = kClientHelloBytes - kMacBytes;

// Reads the input front to back (the corpus generator writes it so); past
// its end, zeros.
class Cursor {
 public:
  explicit Cursor(std::string_view bytes) : rest_(bytes) {}
  size_t remaining() const { return rest_.size(); }
  uint8_t Byte() {
    const std::string_view b = Take(1);
    return b.empty() ? 0 : static_cast<uint8_t>(b[0]);
  }
  uint32_t U32() {
    uint32_t v = 0;
    const std::string_view b = Take(4);
    if (!b.empty()) std::memcpy(&v, b.data(), b.size());
    return v;
  }
  std::string_view Take(size_t n) {  // up to n bytes
    const std::string_view b = rest_.substr(0, n);
    rest_.remove_prefix(b.size());
    return b;
  }
  std::string Rest() { return std::string(Take(rest_.size())); }

 private:
  std::string_view rest_;
};

std::shared_ptr<const Secret> FixedSecret() {
  static const std::shared_ptr<const Secret> secret =
      *Secret::FromBytes("cairn fuzz secret: 32 bytes or more, fixed so runs repeat");
  return secret;
}

void CheckDecoders(int which, std::string_view b) {
  if (which == 0) {
    StatusOr<ServerHello> h = DecodeServerHello(b);
    if (h.ok()) FUZZ_CHECK(EncodeServerHello(*h) == b, "a server hello does not re-encode to its bytes");
  } else if (which == 1) {
    StatusOr<ClientHello> h = DecodeClientHello(b);
    if (!h.ok()) return;
    FUZZ_CHECK(EncodeClientHello(*h) == b, "a client hello does not re-encode to its bytes");
    FUZZ_CHECK(PeerRoleName(h->role) != std::string("unknown role"), "a client hello with an unknown role decoded");
  } else {
    StatusOr<Mac> m = DecodeServerProof(b);
    if (m.ok()) FUZZ_CHECK(EncodeServerProof(*m) == b, "a server proof does not re-encode to its bytes");
  }
}

// The server's side. Input: u8 (bit 0: insecure), u32 server index, then
// the client hello.
void CheckServer(Cursor& in, bool sign) {
  const bool insecure = (in.Byte() & 1) != 0;
  const int32_t index = static_cast<int32_t>(in.U32());
  std::string bytes = in.Rest();
  ServerAuth auth;
  if (insecure) auth.insecure = true; else auth.secret = FixedSecret();
  ServerHandshake server(auth, index);
  FUZZ_CHECK(server.hello().size() == kServerHelloBytes, "server hello of the wrong size");
  if (sign && bytes.size() == kClientHelloBytes) {
    const Mac mac = HandshakeMac(*FixedSecret(), kClientLabel, server.hello(),
                                 std::string_view(bytes).substr(0, kClientMacOffset));
    std::memcpy(bytes.data() + kClientMacOffset, mac.data(), kMacBytes);
  }
  std::string proof;
  StatusOr<PeerIdentity> peer = server.OnClientHello(bytes, &proof);
  StatusOr<ClientHello> hello = DecodeClientHello(bytes);
  if (!hello.ok()) {
    FUZZ_CHECK(!peer.ok(), "a client hello that does not decode was accepted");
    return;
  }
  if (!insecure) {
    const Mac expected = HandshakeMac(*FixedSecret(), kClientLabel, server.hello(),
                                      std::string_view(bytes).substr(0, kClientMacOffset));
    const bool genuine = MacEquals(expected, hello->mac);
    FUZZ_CHECK(peer.ok() == genuine, genuine ? "a signed client hello was refused" : "a forged client hello passed");
  } else {
    FUZZ_CHECK(peer.ok(), "an insecure server refused a well-formed client hello");
  }
  if (!peer.ok()) return;
  FUZZ_CHECK(peer->authenticated == !insecure, "authenticated flag disagrees with the server's auth");
  FUZZ_CHECK(peer->role == hello->role, "the peer's role is not the hello's");
  if (peer->role == PeerRole::kOperator) FUZZ_CHECK(peer->index == -1, "the operator has an index");
  if (peer->role == PeerRole::kChief) FUZZ_CHECK(peer->index == 0, "the chief is not worker 0");
  (void)peer->ToString();
  StatusOr<Mac> mac = DecodeServerProof(proof);
  FUZZ_CHECK(mac.ok(), "the server's proof does not decode");
  if (!insecure) {
    FUZZ_CHECK(MacEquals(*mac, HandshakeMac(*FixedSecret(), kServerLabel, server.hello(), bytes)),
               "the server's proof is not the documented MAC");
  }
}

// The client's side. Input: u8 (bit 0: has the secret), u8 role, u32
// index, the server hello (56 bytes), then the server proof.
void CheckClient(Cursor& in, bool sign) {
  ClientCredentials creds;
  if (in.Byte() & 1) creds.secret = FixedSecret();
  creds.role = static_cast<PeerRole>(1 + in.Byte() % 3);
  creds.index = static_cast<int32_t>(in.U32() % (1 << 20));
  const std::string server_hello(in.Take(kServerHelloBytes));
  std::string proof = in.Rest();
  ClientHandshake client(creds);
  StatusOr<std::string> hello = client.OnServerHello(server_hello);
  StatusOr<ServerHello> decoded = DecodeServerHello(server_hello);
  if (!decoded.ok()) {
    FUZZ_CHECK(!hello.ok(), "a server hello that does not decode was accepted");
    return;
  }
  FUZZ_CHECK(hello.ok() == (decoded->auth_required == (creds.secret != nullptr)),
             "the client's answer to the server's auth_required is wrong");
  if (!hello.ok()) return;
  StatusOr<ClientHello> mine = DecodeClientHello(*hello);
  FUZZ_CHECK(mine.ok(), "the client's hello does not decode");
  FUZZ_CHECK(mine->role == creds.role, "the client hello's role is not the credentials'");
  const std::string_view signed_part = std::string_view(*hello).substr(0, kClientMacOffset);
  if (creds.secret) {
    FUZZ_CHECK(MacEquals(mine->mac, HandshakeMac(*FixedSecret(), kClientLabel, server_hello, signed_part)),
               "the client's MAC is not the documented one");
  }
  const Mac expected = creds.secret ? HandshakeMac(*FixedSecret(), kServerLabel, server_hello, *hello) : Mac{};
  if (sign) proof = EncodeServerProof(expected);
  Status s = client.OnServerProof(proof);
  StatusOr<Mac> mac = DecodeServerProof(proof);
  if (!mac.ok()) {
    FUZZ_CHECK(!s.ok(), "a server proof that does not decode was accepted");
    return;
  }
  if (creds.secret) {
    FUZZ_CHECK(s.ok() == MacEquals(*mac, expected), s.ok() ? "a forged server proof passed" : "a genuine proof failed");
  } else {
    FUZZ_CHECK(s.ok(), "a client without a secret refused a well-formed proof");
  }
}

// Flips the bits of `msg` that `flips` name, counting bits from `first_bit`
// (the message's place in the exchange); a bit past it is not its.
std::string Damage(std::string msg, const std::vector<uint32_t>& flips, size_t first_bit) {
  for (uint32_t f : flips) {
    if (f < first_bit || f - first_bit >= msg.size() * 8) continue;
    const size_t bit = f - first_bit;
    msg[bit / 8] = static_cast<char>(msg[bit / 8] ^ (1 << (bit % 8)));
  }
  return msg;
}

// Both sides, their messages damaged on the way by bit flips. Input: u8
// (bit 0: with the secret), u8 role, u32 index, then up to 8 u32 bit
// positions counted across the three messages (past them: no flip).
void CheckExchange(Cursor& in) {
  const bool secure = (in.Byte() & 1) != 0;
  ServerAuth auth;
  ClientCredentials creds;
  if (secure) auth.secret = creds.secret = FixedSecret(); else auth.insecure = true;
  creds.role = static_cast<PeerRole>(1 + in.Byte() % 3);
  creds.index = static_cast<int32_t>(in.U32() % 1000);
  std::vector<uint32_t> flips;
  while (in.remaining() >= 4 && flips.size() < 8) flips.push_back(in.U32());
  constexpr size_t kClientAt = kServerHelloBytes * 8, kProofAt = kClientAt + kClientHelloBytes * 8;

  ServerHandshake server(auth, 7);
  ClientHandshake client(creds);
  bool tampered = false;
  auto pass = [&](const std::string& msg, size_t first_bit) {
    std::string out = Damage(msg, flips, first_bit);
    tampered = tampered || out != msg;
    return out;
  };
  StatusOr<std::string> client_hello = client.OnServerHello(pass(server.hello(), 0));
  if (!client_hello.ok()) {
    FUZZ_CHECK(tampered, "an untampered server hello was refused");
    return;
  }
  std::string proof;
  StatusOr<PeerIdentity> peer = server.OnClientHello(pass(*client_hello, kClientAt), &proof);
  if (!peer.ok()) {
    FUZZ_CHECK(tampered, "an untampered client hello was refused");
    return;
  }
  Status s = client.OnServerProof(pass(proof, kProofAt));
  if (!tampered) {
    FUZZ_CHECK(s.ok(), "an untampered handshake failed");
    FUZZ_CHECK(peer->authenticated == secure && peer->role == creds.role, "the server saw the wrong peer");
  } else if (secure) {
    // With a secret, every changed bit breaks a check or a MAC somewhere (the
    // insecure handshake proves nothing: its nonces may change freely).
    FUZZ_CHECK(!s.ok(), "a tampered handshake completed");
  }
}

}  // namespace
}  // namespace cairn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn;
  if (size == 0) return 0;
  const int mode = data[0] & 7;
  const bool sign = (data[0] & 8) != 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  Cursor in(rest);
  switch (mode) {
    case 0: case 1: case 2: CheckDecoders(mode, rest); break;
    case 3: CheckServer(in, sign); break;
    case 4: CheckClient(in, sign); break;
    default: CheckExchange(in); break;
  }
  return 0;
}
