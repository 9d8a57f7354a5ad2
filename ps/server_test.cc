// A real Server on 127.0.0.1, driven by the real client and by raw sockets
// that send what no Cairn client would.
#include "ps/server.h"

#include <future>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "common/messages.h"
#include "tests/push_frame.h"
#include "tests/raw_socket.h"
#include "tests/status_matchers.h"
#include "tests/test_secret.h"
#include "tests/wait.h"
#include "worker/ps_client.h"

namespace cairn {
namespace {

using std::chrono::milliseconds;
using testing::RawSocket;

VariableSpec Spec(const std::string& name, Shape shape, InitKind kind = InitKind::kUniform) {
  VariableSpec s{name, std::move(shape), DType::kFloat32, {}, true};
  s.init.kind = kind;
  s.init.seed = 11;
  return s;
}

OptimizerSpec Sgd(double lr) {
  OptimizerSpec o;
  o.learning_rate = lr;
  return o;
}

class ServerTest : public ::testing::Test {
 protected:
  void StartServers(int n) {
    for (int i = 0; i < n; ++i) {
      ServerOptions o;
      o.index = i;
      auto s = Server::Start(loop_, WithTestAuth(o));
      ASSERT_TRUE(s.ok()) << s.status();
      endpoints_.push_back((*s)->endpoint());
      servers_.push_back(std::move(*s));
    }
    transport_ = std::make_unique<AsioTransport>(loop_, endpoints_, TestTransportOptions());
  }

  // A client whose variables are `specs`, created with `optimizer`.
  std::unique_ptr<PsClient> Client(const std::vector<VariableSpec>& specs, PlacementOptions po = {},
                                   const OptimizerSpec& optimizer = Sgd(0.1), Status* create_status = nullptr) {
    PsClientOptions o;
    o.timeout = milliseconds(5000);
    o.placement = po;
    auto client = std::make_unique<PsClient>(transport_.get(), o);
    Status s = client->Create(specs, optimizer, TrainingMode{});
    if (create_status) *create_status = s;
    else EXPECT_TRUE(s.ok()) << s;
    return client;
  }

  // A sealed frame as raw bytes.
  static std::string RawFrame(FrameType type, std::string control, std::string data = "") {
    OutFrame f;
    f.type = static_cast<uint16_t>(type);
    f.request_id = 77;
    f.control = std::move(control);
    if (!data.empty()) f.data.push_back(ByteSpan{data.data(), data.size()});
    f.Seal();
    return SerializeFrame(f);
  }

  // Sends `frame` to server 0 through the real transport and returns the
  // status the server replied with.
  Status CallServer(uint16_t type, std::string control, const std::string& data = "") {
    OutFrame f;
    f.type = type;
    f.control = std::move(control);
    if (!data.empty()) f.data.push_back(ByteSpan{data.data(), data.size()});
    std::vector<std::pair<int, OutFrame>> calls;
    calls.emplace_back(0, std::move(f));
    auto replies = CallAll(*transport_, std::move(calls), DeadlineAfter(milliseconds(5000)));
    if (!replies[0].ok()) return replies[0].status().WithContext("transport");
    StatusReply reply;
    Status decoded = DecodeMessage(replies[0]->control, &reply, "reply");
    if (!decoded.ok()) return decoded.WithContext("reply");
    return reply.status.ToStatus();
  }

  // Shows the server still serves a well-behaved client.
  void ExpectHealthy() {
    auto client = Client({Spec("health", {4})});
    auto v = client->Pull({"health"});
    ASSERT_TRUE(v.ok()) << v.status();
  }

  EventLoop loop_{2};
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<Endpoint> endpoints_;
  std::unique_ptr<AsioTransport> transport_;
};

TEST_F(ServerTest, PullReturnsTheInitialValuesOfEveryVariable) {
  StartServers(2);
  std::vector<VariableSpec> specs = {Spec("a", {5, 3}), Spec("b", {7}, InitKind::kGlorotNormal)};
  auto client = Client(specs);
  auto values = client->Pull({"a", "b"});
  ASSERT_TRUE(values.ok()) << values.status();
  for (const VariableSpec& s : specs) {
    Tensor expected(DType::kFloat32, s.shape);
    InitializeRows(s, 0, &expected);
    EXPECT_TRUE((*values)[s.name].BitEqual(expected)) << s.name;
  }
}

TEST_F(ServerTest, RowSplitVariableIsReassembledAndUpdatedAcrossThreeServers) {
  StartServers(3);
  VariableSpec spec = Spec("emb", {10, 4});
  auto client = Client({spec}, PlacementOptions{0}, Sgd(0.5));
  ASSERT_EQ(client->placement().SlicesOf("emb")->size(), 3u);
  Tensor grad(DType::kFloat32, {10, 4});
  for (int i = 0; i < 40; ++i) grad.data<float>()[i] = static_cast<float>(i);
  PushBatch batch;
  batch.gradients["emb"] = grad;
  ASSERT_TRUE(client->Push(batch).ok());
  auto values = client->Pull({"emb"});
  ASSERT_TRUE(values.ok()) << values.status();
  Tensor expected(DType::kFloat32, {10, 4});
  InitializeRows(spec, 0, &expected);
  for (int i = 0; i < 40; ++i) {
    EXPECT_FLOAT_EQ((*values)["emb"].data<float>()[i], expected.data<float>()[i] - 0.5f * i) << i;
  }
}

// Pulls big enough to be hashed off the connection's strand, and answered
// from the shards' own buffers, while pushes update those shards: every pull
// is one whole state of each variable (all elements alike), and the last
// pull sees every push.
TEST_F(ServerTest, LargePullsAreWholeAndRightWhilePushesUpdateTheValues) {
  StartServers(1);
  const VariableSpec big = Spec("big", {1024, 256}, InitKind::kZeros);  // 1 MiB
  const VariableSpec small = Spec("small", {3}, InitKind::kZeros);
  auto client = Client({small, big}, {}, Sgd(1.0));
  constexpr int kPushes = 40;
  std::thread pusher([&] {
    PushBatch batch;
    batch.gradients["big"] = Tensor(DType::kFloat32, big.shape);
    batch.gradients["big"].flat().setConstant(1.0f);
    batch.gradients["small"] = Tensor::FromVector({3}, {1, 1, 1});
    for (int i = 0; i < kPushes; ++i) ASSERT_TRUE(client->Push(batch).ok());
  });
  for (int i = 0; i < kPushes; ++i) {
    auto values = client->Pull({"small", "big"});
    ASSERT_TRUE(values.ok()) << values.status();
    const Tensor& b = (*values)["big"];
    ASSERT_EQ(b.shape(), big.shape);
    const float first = b.data<float>()[0];
    for (int64_t k = 0; k < b.num_elements(); ++k) ASSERT_EQ(b.data<float>()[k], first) << k;
  }
  pusher.join();
  auto last = client->Pull({"small", "big"});
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_TRUE((*last)["small"].BitEqual(Tensor::FromVector({3}, {-kPushes, -kPushes, -kPushes})));
  EXPECT_FLOAT_EQ((*last)["big"].data<float>()[big.shape[0] * big.shape[1] - 1], -kPushes);
  EXPECT_EQ(servers_[0]->stats().frames_rejected, 0u);
}

// Calls in flight at once (PushAsync / PullAsync): every push is applied
// once, whole, and every pull returns one whole state; after all are
// waited for, a pull sees all of them.
TEST_F(ServerTest, ManyPushesAndPullsInFlightAtOnceAreEachAppliedAndAnswered) {
  StartServers(2);
  const VariableSpec spec = Spec("w", {64, 32}, InitKind::kZeros);
  auto client = Client({spec}, PlacementOptions{0}, Sgd(1.0));
  ASSERT_EQ(client->placement().SlicesOf("w")->size(), 2u);
  PushBatch batch;
  batch.gradients["w"] = Tensor(DType::kFloat32, spec.shape);
  batch.gradients["w"].flat().setConstant(1.0f);
  constexpr int kCalls = 32;
  std::vector<PendingCall<Status>> pushes;
  std::vector<PendingCall<StatusOr<std::map<std::string, Tensor>>>> pulls;
  for (int i = 0; i < kCalls; ++i) {
    pushes.push_back(client->PushAsync(batch));
    pulls.push_back(client->PullAsync({"w"}));
  }
  for (auto& p : pushes) ASSERT_OK(p.Wait());
  for (auto& p : pulls) {
    auto v = p.Wait();
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ((*v)["w"].shape(), spec.shape);
    // Each server's slice is one whole state: its elements are alike.
    for (int64_t half : {0, 32}) {
      const float* row = (*v)["w"].data<float>() + half * 32;
      for (int64_t k = 0; k < 32 * 32; ++k) ASSERT_EQ(row[k], row[0]) << half << " " << k;
    }
  }
  auto last = client->Pull({"w"});
  ASSERT_TRUE(last.ok()) << last.status();
  for (int64_t k = 0; k < 64 * 32; ++k) ASSERT_EQ((*last)["w"].data<float>()[k], -kCalls) << k;
}

TEST_F(ServerTest, AnAsyncCallThatFailsBeforeSendingReturnsItsErrorFromWait) {
  StartServers(1);
  auto client = Client({Spec("w", {4}, InitKind::kZeros)});
  EXPECT_EQ(client->PullAsync({"nope"}).Wait().status().code(), StatusCode::kNotFound);
  PushBatch batch;
  batch.gradients["w"] = Tensor(DType::kFloat32, {5});
  EXPECT_EQ(client->PushAsync(batch).Wait().code(), StatusCode::kInvalidArgument);
  // A dropped call still runs: the push below is applied though never waited for.
  batch.gradients["w"] = Tensor::FromVector({4}, {1, 1, 1, 1});
  { auto dropped = client->PushAsync(batch); }
  ASSERT_OK(client->Push(batch));
  EXPECT_TRUE(WaitUntil([&] {
    auto now = client->Pull({"w"});
    return now.ok() && (*now)["w"].data<float>()[0] < -0.15f;  // two SGD(0.1) steps of 1 from zero
  }));
}

TEST_F(ServerTest, ConflictingCreateIsAnErrorNamingBothSpecs) {
  StartServers(1);
  Client({Spec("w", {4})});
  Client({Spec("w", {4})});  // idempotent
  Status s;
  Client({Spec("w", {8})}, {}, Sgd(0.1), &s);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("[4]"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[8]"), std::string::npos) << s;
}

TEST_F(ServerTest, PullOfAVariableTheServerDoesNotHaveIsNotFound) {
  StartServers(1);
  auto client = Client({Spec("real", {4})});
  // Straight onto the wire: a pull of a variable the server never created.
  Status v = CallServer(static_cast<uint16_t>(FrameType::kPull), EncodeMessage(PullRequest{{"ghost"}}));
  EXPECT_EQ(v.code(), StatusCode::kNotFound);
  EXPECT_NE(v.message().find("ghost"), std::string::npos);
  ExpectHealthy();
}

TEST_F(ServerTest, PullOfAVariableTheClientNeverDeclaredIsNotFound) {
  StartServers(1);
  auto client = Client({Spec("real", {4})});
  auto v = client->Pull({"ghost"});
  EXPECT_EQ(v.status().code(), StatusCode::kNotFound);
  EXPECT_NE(v.status().message().find("ghost"), std::string::npos);
}

TEST_F(ServerTest, PushOfTheWrongShapeIsRejectedByClientAndServer) {
  StartServers(1);
  auto client = Client({Spec("w", {4})});
  PushBatch bad;
  bad.gradients["w"] = Tensor(DType::kFloat32, {5});
  EXPECT_EQ(client->Push(bad).code(), StatusCode::kInvalidArgument);

  // The same mistake straight onto the wire.
  PushRequest req;
  req.worker_id = 3;
  req.sequence = 1;
  req.grads = {TensorDesc{"w", DType::kFloat32, {5}, 0, 0, 20}};
  Status wire = CallServer(static_cast<uint16_t>(FrameType::kPush), EncodeMessage(req), std::string(20, '\0'));
  EXPECT_EQ(wire.code(), StatusCode::kInvalidArgument) << wire;
  EXPECT_NE(wire.message().find("[5]"), std::string::npos) << wire;
  // Nothing was applied.
  Tensor expected(DType::kFloat32, {4});
  InitializeRows(Spec("w", {4}), 0, &expected);
  auto after = client->Pull({"w"});
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->at("w").BitEqual(expected));
}

TEST_F(ServerTest, MalformedControlGetsAnErrorReplyAndTheConnectionLives) {
  StartServers(1);
  // Claims 2^63 names.
  Status s = CallServer(static_cast<uint16_t>(FrameType::kPull), std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  ExpectHealthy();
}

TEST_F(ServerTest, GarbageOnOneSocketDropsOnlyThatConnection) {
  StartServers(1);
  auto client = Client({Spec("w", {16})});
  RawSocket raw(endpoints_[0].port);
  ASSERT_TRUE(raw.ok());
  ASSERT_OK(raw.Handshake(TestCredentials()));
  std::mt19937 rng(5);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  raw.Send(garbage);
  EXPECT_TRUE(raw.WaitForClose(milliseconds(5000)));
  ASSERT_TRUE(client->Pull({"w"}).ok());
  EXPECT_GE(servers_[0]->stats().frames_rejected, 1u);
}

TEST_F(ServerTest, OversizedFrameIsRejectedFromItsHeader) {
  StartServers(1);
  std::string frame = RawFrame(FrameType::kPush, "");
  uint64_t huge = uint64_t{1} << 40;
  std::memcpy(frame.data() + 24, &huge, 8);  // data_len
  RawSocket raw(endpoints_[0].port);
  ASSERT_TRUE(raw.ok());
  ASSERT_OK(raw.Handshake(TestCredentials()));
  raw.Send(frame.substr(0, kFrameHeaderBytes));
  EXPECT_TRUE(raw.WaitForClose(milliseconds(5000)));
  ExpectHealthy();
}

TEST_F(ServerTest, UnknownTypeBadVersionAndBadChecksumEachCloseTheirConnection) {
  StartServers(1);
  std::string good = RawFrame(FrameType::kHello, EncodeMessage(HelloRequest{1, {}}));
  std::vector<std::string> bad;
  std::string unknown = good;
  unknown[6] = 42;  // type
  bad.push_back(unknown);
  std::string version = good;
  version[4] = 9;
  bad.push_back(version);
  std::string corrupt = good;
  corrupt.back() ^= 0x5a;  // payload byte: checksum mismatch
  bad.push_back(corrupt);
  for (const std::string& frame : bad) {
    RawSocket raw(endpoints_[0].port);
    ASSERT_TRUE(raw.ok());
    ASSERT_OK(raw.Handshake(TestCredentials()));
    raw.Send(frame);
    EXPECT_TRUE(raw.WaitForClose(milliseconds(5000)));
  }
  EXPECT_GE(servers_[0]->stats().frames_rejected, 3u);
  ExpectHealthy();
}

TEST_F(ServerTest, TruncatedFrameFollowedByDisconnectLeavesTheServerServing) {
  StartServers(1);
  std::string good = RawFrame(FrameType::kHello, EncodeMessage(HelloRequest{1, {}}));
  for (size_t cut : {size_t{1}, size_t{20}, kFrameHeaderBytes, good.size() - 1}) {
    RawSocket raw(endpoints_[0].port);
    ASSERT_TRUE(raw.ok());
    ASSERT_OK(raw.Handshake(TestCredentials()));
    raw.Send(good.substr(0, cut));
    raw.ShutdownWrite();
    EXPECT_TRUE(raw.WaitForClose(milliseconds(5000)));
  }
  ExpectHealthy();
}

TEST_F(ServerTest, ManyRandomlyCorruptedFramesNeverStopTheServer) {
  StartServers(1);
  std::string good = RawFrame(FrameType::kPull, EncodeMessage(PullRequest{{"w"}}));
  std::mt19937 rng(9);
  for (int i = 0; i < 100; ++i) {
    std::string frame = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) frame[rng() % frame.size()] ^= static_cast<char>(1 + rng() % 255);
    RawSocket raw(endpoints_[0].port);
    ASSERT_TRUE(raw.ok());
    ASSERT_OK(raw.Handshake(TestCredentials()));
    raw.Send(frame);
    raw.ShutdownWrite();
    EXPECT_TRUE(raw.WaitForClose(milliseconds(5000))) << "frame " << i;
  }
  ExpectHealthy();
}

// --- Pushes are applied once --------------------------------------------------

// A push of `grad` to "w" named (worker, incarnation, sequence), as a client
// sends it: the same OutFrame may be handed to the transport more than once.
OutFrame PushFrame(int32_t worker, uint64_t incarnation, uint64_t sequence, const std::vector<float>& grad,
                   bool train_step = false, int64_t step = 0) {
  PushRequest req;
  req.worker_id = worker;
  req.incarnation = incarnation;
  req.sequence = sequence;
  req.train_step = train_step;
  req.step = step;
  return testing::PushOfW(req, grad);
}

// Sends `frame` to server 0 over `transport` and returns the status of the reply.
Status SendPush(Transport& transport, const OutFrame& frame) {
  std::vector<std::pair<int, OutFrame>> calls;
  calls.emplace_back(0, frame);
  auto replies = CallAll(transport, std::move(calls), DeadlineAfter(milliseconds(5000)));
  if (!replies[0].ok()) return replies[0].status().WithContext("transport");
  StatusReply reply;
  Status decoded = DecodeMessage(replies[0]->control, &reply, "reply");
  if (!decoded.ok()) return decoded.WithContext("reply");
  return reply.status.ToStatus();
}

std::vector<float> Floats(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
}

TEST_F(ServerTest, APushResentWithTheSameKeyIsAppliedOnceAndEveryCopyGetsOk) {
  StartServers(1);
  auto client = Client({Spec("w", {4}, InitKind::kZeros)}, {}, Sgd(0.5));
  const OutFrame push = PushFrame(/*worker=*/3, /*incarnation=*/0xABCDEF, /*sequence=*/1, {1, 2, 3, 4});

  // The identical frame twice on one connection, then once more on another
  // connection (a client that lost its reply and reconnected).
  EXPECT_TRUE(SendPush(*transport_, push).ok());
  EXPECT_TRUE(SendPush(*transport_, push).ok());
  AsioTransport second(loop_, endpoints_, TestTransportOptions());
  EXPECT_TRUE(SendPush(second, push).ok());

  auto v = client->Pull({"w"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Floats(v->at("w")), (std::vector<float>{-0.5f, -1.0f, -1.5f, -2.0f}));
  ServerStats stats = servers_[0]->stats();
  EXPECT_EQ(stats.duplicate_pushes, 2u);

  // The next sequence number of the same client is a new push.
  EXPECT_TRUE(SendPush(*transport_, PushFrame(3, 0xABCDEF, 2, {1, 2, 3, 4})).ok());
  v = client->Pull({"w"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Floats(v->at("w")), (std::vector<float>{-1.0f, -2.0f, -3.0f, -4.0f}));
  EXPECT_EQ(servers_[0]->stats().duplicate_pushes, 2u);
}

// --- Requests a client would not send: refused whole, nothing changed -------

TEST_F(ServerTest, APushStartingOutsideTheShardsRowsIsRefusedAndChangesNothing) {
  StartServers(1);
  auto client = Client({Spec("w", {4}, InitKind::kZeros)}, {}, Sgd(0.5));
  PushRequest req;
  req.worker_id = 3;
  Status s = SendPush(*transport_, testing::PushOfW(req, {1, 2, 3, 4}, /*row_begin=*/999999));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("starts at row 999999"), std::string::npos) << s;
  EXPECT_NE(s.message().find("rows [0, 4)"), std::string::npos) << s;
  auto v = client->Pull({"w"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Floats(v->at("w")), (std::vector<float>(4, 0.0f)));
}

TEST_F(ServerTest, APushNamingAVariableTwiceIsRefusedWhole) {
  StartServers(1);
  auto client = Client({Spec("w", {4}, InitKind::kZeros)}, {}, Sgd(0.5));
  PushRequest req;
  req.worker_id = 3;
  OutFrame push = testing::PushOfW(req, {1, 1, 1, 1});
  // The same tensor named twice: the control's grads hold "w" twice, both
  // pointing at the one data block.
  ASSERT_TRUE(DecodeMessage(push.control, &req, "Push").ok());
  req.grads.push_back(req.grads[0]);
  push.control = EncodeMessage(req);
  Status s = SendPush(*transport_, push);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("more than once"), std::string::npos) << s;
  auto v = client->Pull({"w"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Floats(v->at("w")), (std::vector<float>(4, 0.0f))) << "half of a refused push was applied";
}

TEST_F(ServerTest, APullNamingAVariableTwiceIsRefused) {
  StartServers(1);
  auto client = Client({Spec("w", {4})});
  PullRequest req;
  req.names = {"w", "w"};
  Status s = CallServer(static_cast<uint16_t>(FrameType::kPull), EncodeMessage(req));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("more than once"), std::string::npos) << s;
  ExpectHealthy();
}

TEST_F(ServerTest, APullWhoseReplyWouldPassTheFrameLimitIsOutOfRange) {
  // A server whose frames carry at most 64 KiB of values: two 40 KiB
  // variables fit one pull each, not both in one.
  ServerOptions o;
  o.limits.max_data_bytes = 64 << 10;
  auto server = Server::Start(loop_, WithTestAuth(o));
  ASSERT_TRUE(server.ok()) << server.status();
  endpoints_.push_back((*server)->endpoint());
  servers_.push_back(std::move(*server));
  transport_ = std::make_unique<AsioTransport>(loop_, endpoints_, TestTransportOptions());
  auto client = Client({Spec("a", {10240}), Spec("b", {10240})});
  ASSERT_TRUE(client->Pull({"a"}).ok());
  ASSERT_TRUE(client->Pull({"b"}).ok());
  PullRequest req;
  req.names = {"a", "b"};
  Status s = CallServer(static_cast<uint16_t>(FrameType::kPull), EncodeMessage(req));
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s;
  EXPECT_NE(s.message().find("pull fewer at once"), std::string::npos) << s;
  ExpectHealthy();
}

// Only the applied copy counts in pushes_applied, not the answers to its
// retries.
TEST_F(ServerTest, ARetriedPushCountsAsAppliedOnce) {
  StartServers(1);
  auto client = Client({Spec("w", {4}, InitKind::kZeros)}, {}, Sgd(0.5));
  const uint64_t before = servers_[0]->stats().pushes_applied;
  const OutFrame push = PushFrame(3, 0xABCDEF, 1, {1, 2, 3, 4});
  ASSERT_TRUE(SendPush(*transport_, push).ok());
  ASSERT_TRUE(SendPush(*transport_, push).ok());
  ServerStats stats = servers_[0]->stats();
  EXPECT_EQ(stats.duplicate_pushes, 1u);
  EXPECT_EQ(stats.pushes_applied - before, 1u) << "a duplicate answered from the push log is counted as applied";
}

TEST_F(ServerTest, TheSameSequenceFromAnotherIncarnationOrWorkerIsAnotherPush) {
  StartServers(1);
  auto client = Client({Spec("w", {4}, InitKind::kZeros)}, {}, Sgd(0.5));
  ASSERT_TRUE(SendPush(*transport_, PushFrame(3, 100, 1, {1, 1, 1, 1})).ok());
  ASSERT_TRUE(SendPush(*transport_, PushFrame(3, 200, 1, {1, 1, 1, 1})).ok());  // a restarted process
  ASSERT_TRUE(SendPush(*transport_, PushFrame(4, 100, 1, {1, 1, 1, 1})).ok());  // another worker
  auto v = client->Pull({"w"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Floats(v->at("w")), (std::vector<float>(4, -1.5f)));
  EXPECT_EQ(servers_[0]->stats().duplicate_pushes, 0u);
}

TEST_F(ServerTest, IncarnationZeroIsNeverDeduplicated) {
  StartServers(1);
  auto client = Client({Spec("w", {4}, InitKind::kZeros)}, {}, Sgd(0.5));
  const OutFrame legacy = PushFrame(3, /*incarnation=*/0, /*sequence=*/7, {1, 1, 1, 1});
  ASSERT_TRUE(SendPush(*transport_, legacy).ok());
  ASSERT_TRUE(SendPush(*transport_, legacy).ok());
  AsioTransport second(loop_, endpoints_, TestTransportOptions());
  ASSERT_TRUE(SendPush(second, legacy).ok());
  auto v = client->Pull({"w"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Floats(v->at("w")), (std::vector<float>(4, -1.5f)));  // three updates
  EXPECT_EQ(servers_[0]->stats().duplicate_pushes, 0u);
}

TEST_F(ServerTest, ARetryOfASyncPushStillWaitingForItsStepGetsTheStepsResult) {
  StartServers(1);
  TrainingMode sync;
  sync.consistency = Consistency::kSync;
  sync.num_workers = 2;
  sync.sync_timeout_ms = 20000;
  PsClientOptions o;
  o.timeout = milliseconds(20000);
  o.worker_id = 1;
  PsClient w1(transport_.get(), o);
  ASSERT_TRUE(w1.Create({Spec("w", {4}, InitKind::kZeros)}, Sgd(0.5), sync).ok());

  // Worker 0's step-0 push waits for worker 1; its retry, on another
  // connection, arrives while the first copy waits.
  const OutFrame push = PushFrame(0, 0x5EED, 1, {1, 1, 1, 1}, /*train_step=*/true, /*step=*/0);
  AsioTransport second(loop_, endpoints_, TestTransportOptions());
  std::promise<Status> first, retry;
  std::thread t1([&] { first.set_value(SendPush(*transport_, push)); });
  std::thread t2([&] { retry.set_value(SendPush(second, push)); });
  const auto deadline = Clock::now() + milliseconds(10000);
  while (servers_[0]->stats().duplicate_pushes < 1 && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));  // polling: the retry has no other visible effect
  }
  ASSERT_EQ(servers_[0]->stats().duplicate_pushes, 1u);

  PushBatch batch;
  batch.gradients["w"] = Tensor::FromVector({4}, {3, 3, 3, 3});
  batch.train_step = true;
  EXPECT_TRUE(w1.Push(batch).ok());
  t1.join();
  t2.join();
  Status a = first.get_future().get(), b = retry.get_future().get();
  EXPECT_TRUE(a.ok()) << a;
  EXPECT_TRUE(b.ok()) << b;
  auto v = w1.Pull({"w"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(Floats(v->at("w")), (std::vector<float>(4, -1.0f)));  // once: -0.5 * mean(1, 3)
}

TEST(ServerHello, ReportsANonZeroIncarnationThatDiffersBetweenServers) {
  EventLoop loop(2);
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<Endpoint> endpoints;
  for (int i = 0; i < 2; ++i) {
    ServerOptions o;
    o.index = i;
    auto s = Server::Start(loop, WithTestAuth(o));
    ASSERT_TRUE(s.ok()) << s.status();
    endpoints.push_back((*s)->endpoint());
    servers.push_back(std::move(*s));
  }
  AsioTransport transport(loop, endpoints, TestTransportOptions());
  PsClient client(&transport, PsClientOptions{});
  auto hellos = client.Hello();
  ASSERT_TRUE(hellos.ok()) << hellos.status();
  ASSERT_EQ(hellos->size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const HelloReply& h = (*hellos)[i];
    EXPECT_EQ(h.server_index, i);
    EXPECT_NE(h.incarnation, 0u);
    EXPECT_EQ(h.restore_id, 0u);
    EXPECT_EQ(h.restored_step, -1);
    EXPECT_EQ(h.sync_step, -1);
    EXPECT_FALSE(h.restore_staged);
  }
  EXPECT_NE((*hellos)[0].incarnation, (*hellos)[1].incarnation);
  // Fixed for the process's life.
  auto again = client.Hello();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[0].incarnation, (*hellos)[0].incarnation);
  // And a first CheckForRestarts only learns who the servers are.
  auto restarts = client.CheckForRestarts();
  ASSERT_TRUE(restarts.ok()) << restarts.status();
  EXPECT_TRUE(restarts->empty());
}

TEST(ClientWithoutServer, FailsWithAClearErrorWithinItsDeadline) {
  EventLoop loop(1);
  Endpoint nowhere{"127.0.0.1", testing::UnusedPort()};
  AsioTransport transport(loop, {nowhere}, TestTransportOptions());
  PsClientOptions o;
  o.timeout = milliseconds(400);
  PsClient client(&transport, o);
  const auto start = Clock::now();
  Status v = client.Create({Spec("w", {4})}, Sgd(0.1), TrainingMode{});
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(v.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(v.message().find(nowhere.ToString()), std::string::npos) << v;
  EXPECT_NE(v.message().find("cannot connect"), std::string::npos) << v;
  EXPECT_LT(elapsed, milliseconds(3000));
}

TEST(ClientWithoutServer, RetriesUntilAServerThatStartsLateAnswers) {
  EventLoop loop(2);
  const uint16_t port = testing::UnusedPort();
  AsioTransport transport(loop, {Endpoint{"127.0.0.1", port}}, TestTransportOptions());
  PsClientOptions o;
  o.timeout = milliseconds(10000);
  PsClient client(&transport, o);
  Status created;
  std::thread caller([&] { created = client.Create({Spec("w", {4})}, Sgd(0.1), TrainingMode{}); });
  // The first connection attempts are refused; the client keeps retrying
  // with backoff. Give it time to fail at least once before the server exists.
  std::this_thread::sleep_for(milliseconds(300));
  ServerOptions so;
  so.port = port;
  auto server = Server::Start(loop, WithTestAuth(so));
  ASSERT_TRUE(server.ok()) << server.status();
  caller.join();
  EXPECT_TRUE(created.ok()) << created;
  auto v = client.Pull({"w"});
  EXPECT_TRUE(v.ok()) << v.status();
}

TEST(ServerStart, AnAddressInUseIsUnavailable) {
  EventLoop loop(1);
  auto first = Server::Start(loop, WithTestAuth(ServerOptions{}));
  ASSERT_TRUE(first.ok());
  ServerOptions o;
  o.port = (*first)->endpoint().port;
  auto second = Server::Start(loop, WithTestAuth(o));
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cairn
