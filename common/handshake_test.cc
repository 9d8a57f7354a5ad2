#include "common/handshake.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/secret.h"

namespace cairn {
namespace {

std::shared_ptr<const Secret> MakeSecret(char fill) { return *Secret::FromBytes(std::string(32, fill)); }

ServerAuth Auth(std::shared_ptr<const Secret> s) { return ServerAuth{std::move(s), false}; }

// One whole handshake, in memory: the client's status and, if it got that
// far, the identity the server saw.
struct Outcome {
  Status server;  // of OnClientHello
  Status client;  // of OnServerHello, then OnServerProof
  PeerIdentity peer;
};
Outcome Shake(const ServerAuth& auth, const ClientCredentials& creds) {
  Outcome o;
  ServerHandshake server(auth, 3);
  ClientHandshake client(creds);
  StatusOr<std::string> hello = client.OnServerHello(server.hello());
  if (!hello.ok()) {
    o.client = hello.status();
    return o;
  }
  std::string proof;
  StatusOr<PeerIdentity> peer = server.OnClientHello(*hello, &proof);
  o.server = peer.status();
  if (!peer.ok()) return o;
  o.peer = *peer;
  o.client = client.OnServerProof(proof);
  return o;
}

TEST(Handshake, BothSidesWithTheSecretAuthenticateEachOtherAndTheRoleGoesAcross) {
  const auto secret = MakeSecret('k');
  Outcome o = Shake(Auth(secret), ClientCredentials{secret, PeerRole::kWorker, 7});
  EXPECT_TRUE(o.server.ok()) << o.server;
  EXPECT_TRUE(o.client.ok()) << o.client;
  EXPECT_EQ(o.peer.role, PeerRole::kWorker);
  EXPECT_EQ(o.peer.index, 7);
  EXPECT_TRUE(o.peer.authenticated);
  EXPECT_FALSE(o.peer.may_control());
  o = Shake(Auth(secret), ClientCredentials{secret, PeerRole::kChief, 0});
  EXPECT_TRUE(o.peer.may_control());
  o = Shake(Auth(secret), ClientCredentials{secret, PeerRole::kOperator, -1});
  EXPECT_TRUE(o.peer.may_control());
}

TEST(Handshake, AnotherSecretOrNoneIsRefused) {
  Outcome o = Shake(Auth(MakeSecret('a')), ClientCredentials{MakeSecret('b'), PeerRole::kChief, 0});
  EXPECT_EQ(o.server.code(), StatusCode::kPermissionDenied) << o.server;
  o = Shake(Auth(MakeSecret('a')), ClientCredentials{nullptr, PeerRole::kChief, 0});
  EXPECT_EQ(o.client.code(), StatusCode::kPermissionDenied) << o.client;  // the client knows it cannot
  // A client with a secret will not talk to a server that proves nothing.
  o = Shake(ServerAuth{nullptr, true}, ClientCredentials{MakeSecret('a'), PeerRole::kWorker, 1});
  EXPECT_EQ(o.client.code(), StatusCode::kPermissionDenied) << o.client;
  // An insecure server and a client without a secret: accepted, marked so.
  o = Shake(ServerAuth{nullptr, true}, ClientCredentials{nullptr, PeerRole::kWorker, 1});
  EXPECT_TRUE(o.server.ok() && o.client.ok()) << o.server << " " << o.client;
  EXPECT_FALSE(o.peer.authenticated);
}

TEST(Handshake, AClientHelloIsGoodForOneServerHelloOnly) {
  const auto secret = MakeSecret('s');
  ServerHandshake first(Auth(secret), 0);
  ClientHandshake client(ClientCredentials{secret, PeerRole::kChief, 0});
  StatusOr<std::string> hello = client.OnServerHello(first.hello());
  ASSERT_TRUE(hello.ok());
  std::string proof;
  ASSERT_TRUE(first.OnClientHello(*hello, &proof).ok());
  ServerHandshake second(Auth(secret), 0);  // a new connection: a new nonce
  EXPECT_NE(second.hello(), first.hello());
  EXPECT_EQ(second.OnClientHello(*hello, &proof).status().code(), StatusCode::kPermissionDenied);
}

TEST(Handshake, EveryByteOfTheClientHelloIsCovered) {
  const auto secret = MakeSecret('m');
  ServerHandshake server(Auth(secret), 0);
  ClientHandshake client(ClientCredentials{secret, PeerRole::kWorker, 2});
  StatusOr<std::string> hello = client.OnServerHello(server.hello());
  ASSERT_TRUE(hello.ok());
  for (size_t i = 0; i < hello->size(); ++i) {
    std::string changed = *hello;
    changed[i] ^= 0x01;
    std::string proof;
    EXPECT_FALSE(server.OnClientHello(changed, &proof).ok()) << "byte " << i;
    EXPECT_TRUE(proof.empty()) << "byte " << i;
  }
}

TEST(Handshake, AReflectedOrForgedServerProofIsRefused) {
  const auto secret = MakeSecret('r');
  ServerHandshake server(Auth(secret), 0);
  ClientHandshake client(ClientCredentials{secret, PeerRole::kWorker, 2});
  StatusOr<std::string> hello = client.OnServerHello(server.hello());
  ASSERT_TRUE(hello.ok());
  // The client's own MAC sent back as the server's proof.
  StatusOr<ClientHello> mine = DecodeClientHello(*hello);
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(client.OnServerProof(EncodeServerProof(mine->mac)).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(client.OnServerProof(EncodeServerProof(Mac{})).code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(client.OnServerProof("short").ok());
}

TEST(HandshakeCodec, RoundTripsAndRejectsWhatIsNotAHandshake) {
  ServerHello sh;
  sh.server_index = 12;
  sh.nonce = RandomNonce();
  StatusOr<ServerHello> sh2 = DecodeServerHello(EncodeServerHello(sh));
  ASSERT_TRUE(sh2.ok());
  EXPECT_EQ(sh2->server_index, 12);
  EXPECT_EQ(sh2->nonce, sh.nonce);
  EXPECT_TRUE(sh2->auth_required);
  ClientHello ch;
  ch.role = PeerRole::kOperator;
  ch.index = -1;
  ch.nonce = RandomNonce();
  ch.mac[5] = 9;
  const std::string bytes = EncodeClientHello(ch);
  EXPECT_EQ(bytes.size(), kClientHelloBytes);
  StatusOr<ClientHello> ch2 = DecodeClientHello(bytes);
  ASSERT_TRUE(ch2.ok());
  EXPECT_EQ(ch2->role, PeerRole::kOperator);
  EXPECT_EQ(ch2->index, -1);
  EXPECT_EQ(ch2->mac, ch.mac);

  EXPECT_EQ(DecodeClientHello(bytes.substr(1)).status().code(), StatusCode::kDataLoss);
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  http.resize(kClientHelloBytes, ' ');
  EXPECT_EQ(DecodeClientHello(http).status().code(), StatusCode::kDataLoss);
  std::string role = bytes;
  role[8] = 9;  // no such role
  EXPECT_EQ(DecodeClientHello(role).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(RandomNonce(), RandomNonce());
}

TEST(HandshakeMac, IsHmacSha256OverTheLabelAndBothStrings) {
  // RFC 4231, test case 6: a 131-byte key of 0xaa.
  const auto rfc = *Secret::FromBytes(std::string(131, '\xaa'));
  const Mac mac = HandshakeMac(*rfc, "Test Using Larger", " Than Block-Size Key", " - Hash Key First");
  const uint8_t expected[kMacBytes] = {0x60, 0xe4, 0x31, 0x59, 0x1e, 0xe0, 0xb6, 0x7f, 0x0d, 0x8a, 0x26,
                                       0xaa, 0xcb, 0xf5, 0xb7, 0x7f, 0x8e, 0x0b, 0xc6, 0x21, 0x37, 0x28,
                                       0xc5, 0x14, 0x05, 0x46, 0x04, 0x0f, 0x0e, 0xe3, 0x7f, 0x54};
  EXPECT_EQ(std::memcmp(mac.data(), expected, kMacBytes), 0);
  const auto secret = MakeSecret('h');
  EXPECT_NE(HandshakeMac(*secret, "ab", "c", "d"), HandshakeMac(*MakeSecret('i'), "ab", "c", "d"));
  EXPECT_TRUE(MacEquals(HandshakeMac(*secret, "x", "", ""), HandshakeMac(*secret, "x", "", "")));
  EXPECT_FALSE(MacEquals(HandshakeMac(*secret, "x", "", ""), HandshakeMac(*secret, "y", "", "")));
}

// --- Secret files ---------------------------------------------------------------

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/secret_test_" + std::to_string(::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(SecretFileTest, AWrittenSecretReadsBackAndIsNeverOverwritten) {
  const std::string path = dir_ + "/job.secret";
  ASSERT_TRUE(WriteSecretFile(path).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  StatusOr<std::shared_ptr<const Secret>> read = Secret::FromFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)->bytes().size(), 64u);  // hex, the newline stripped
  EXPECT_EQ(WriteSecretFile(path).code(), StatusCode::kAlreadyExists);
  StatusOr<std::shared_ptr<const Secret>> again = Secret::FromFile(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->bytes(), (*read)->bytes());
}

TEST_F(SecretFileTest, MissingShortAndReadableFilesAreRefusedNamingTheFix) {
  StatusOr<std::shared_ptr<const Secret>> s = Secret::FromFile(dir_ + "/absent");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("cairn secret --out"), std::string::npos) << s.status();

  const std::string short_path = dir_ + "/short";
  std::ofstream(short_path) << "0123456789\n";
  ::chmod(short_path.c_str(), 0600);
  s = Secret::FromFile(short_path);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("at least 32"), std::string::npos) << s.status();

  const std::string readable = dir_ + "/readable";
  ASSERT_TRUE(WriteSecretFile(readable).ok());
  for (mode_t mode : {0640, 0604, 0660, 0602}) {
    ::chmod(readable.c_str(), mode);
    s = Secret::FromFile(readable);
    EXPECT_FALSE(s.ok()) << std::oct << mode;
    EXPECT_NE(s.status().message().find("chmod 600"), std::string::npos) << s.status();
  }
  ::chmod(readable.c_str(), 0400);
  EXPECT_TRUE(Secret::FromFile(readable).ok());

  EXPECT_FALSE(Secret::FromFile(dir_).ok());  // a directory is not a secret file
  EXPECT_FALSE(Secret::FromBytes(std::string(31, 'x')).ok());
  EXPECT_TRUE(Secret::Generate().ok());
}

}  // namespace
}  // namespace cairn
