// The server's front door against hostile peers, over real sockets on
// 127.0.0.1: authentication before anything is parsed, control operations
// only for the chief, snapshots only in the server's own model directory,
// and the connection cap, deadlines and payload budget. Every wait is
// bounded; the short deadlines are set per test.
#include "ps/connections.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "common/asio_transport.h"
#include "common/messages.h"
#include "ps/server.h"
#include "tests/raw_socket.h"
#include "tests/status_matchers.h"
#include "tests/test_secret.h"
#include "tests/wait.h"
#include "worker/ps_client.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::RawSocket;

// This process's resident set, in bytes.
uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

VariableSpec Spec(const std::string& name, Shape shape) {
  VariableSpec s{name, std::move(shape), DType::kFloat32, {}, true};
  s.init.seed = 3;
  return s;
}

// A sealed frame as raw bytes.
std::string RawFrame(FrameType type, std::string control) {
  OutFrame f;
  f.type = static_cast<uint16_t>(type);
  f.request_id = 5;
  f.control = std::move(control);
  f.Seal();
  return SerializeFrame(f);
}

// The default logger, for as long as it lives, also keeps every line in
// memory, for a test to read. It must be installed before any thread that
// logs starts and removed after they stop: spdlog's default logger is read
// by logging threads without a lock.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()), sink_(std::make_shared<Sink>()) {
    std::vector<spdlog::sink_ptr> sinks = previous_->sinks();
    sinks.push_back(sink_);
    auto tee = std::make_shared<spdlog::logger>("capture", sinks.begin(), sinks.end());
    tee->set_level(previous_->level());
    spdlog::set_default_logger(std::move(tee));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return sink_->text(); }

 private:
  class Sink : public spdlog::sinks::base_sink<std::mutex> {
   public:
    std::string text() {
      std::lock_guard<std::mutex> lock(mutex_);
      return text_;
    }

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      spdlog::memory_buf_t line;
      formatter_->format(msg, line);
      text_.append(line.data(), line.size());
    }
    void flush_() override {}

   private:
    std::string text_;  // guarded by mutex_
  };
  std::shared_ptr<spdlog::logger> previous_;
  std::shared_ptr<Sink> sink_;
};

class ConnectionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/connections_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    server_.reset();
    fs::remove_all(root_);
  }

  void Start(ConnectionLimits limits = {}) {
    ServerOptions o;
    o.connections = limits;
    o.model_dir = root_ + "/model";
    auto s = Server::Start(loop_, WithTestAuth(o));
    ASSERT_OK(s);
    server_ = std::move(*s);
    port_ = server_->endpoint().port;
  }

  // A client of `role` (the chief by default) with calls bounded by `timeout`.
  struct Client {
    std::unique_ptr<AsioTransport> transport;
    std::unique_ptr<PsClient> ps;
  };
  Client Connect(PeerRole role = PeerRole::kChief, int index = 0, milliseconds timeout = milliseconds(10000)) {
    Client c;
    c.transport = std::make_unique<AsioTransport>(loop_, std::vector<Endpoint>{server_->endpoint()},
                                                  TestTransportOptions(role, index));
    PsClientOptions o;
    o.worker_id = index;
    o.timeout = timeout;
    c.ps = std::make_unique<PsClient>(c.transport.get(), o);
    return c;
  }

  // The chief has created "w"; a legitimate client can pull it.
  void ExpectServing() {
    Client chief = Connect();
    ASSERT_OK(chief.ps->Create({Spec("w", {8})}, OptimizerSpec{}, TrainingMode{}));
    StatusOr<std::map<std::string, Tensor>> pulled = chief.ps->Pull({"w"});
    ASSERT_OK(pulled);
  }

  // A raw socket that has passed the handshake as the chief.
  std::unique_ptr<RawSocket> Authenticated() {
    auto raw = std::make_unique<RawSocket>(port_);
    EXPECT_TRUE(raw->ok());
    EXPECT_OK(raw->Handshake(TestCredentials()));
    return raw;
  }

  LogCapture log_;  // before loop_: in place before its threads start, removed after they stop
  EventLoop loop_{2};
  std::string root_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
};

// --- Authentication -------------------------------------------------------------

TEST_F(ConnectionsTest, AClientWithoutTheSecretIsClosedBeforeAnythingIsParsed) {
  Start();
  // What a client without a secret can send: a hello with no proof.
  RawSocket raw(port_);
  ASSERT_TRUE(raw.ok());
  std::string hello;
  ASSERT_TRUE(raw.Receive(kServerHelloBytes, &hello, milliseconds(5000)));
  StatusOr<ServerHello> decoded = DecodeServerHello(hello);
  ASSERT_OK(decoded);
  EXPECT_TRUE(decoded->auth_required);
  ClientHello mine;
  mine.role = PeerRole::kOperator;
  mine.index = -1;
  mine.nonce = RandomNonce();  // and a zero MAC
  ASSERT_TRUE(raw.Send(EncodeClientHello(mine)));
  EXPECT_TRUE(raw.WaitForClose(milliseconds(5000)));  // and no proof came back first
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().handshakes_failed >= 1; }));
  // The real client without a secret says why it cannot connect, at once.
  AsioTransport transport(loop_, {server_->endpoint()}, AsioTransportOptions{});
  PsClient client(&transport, PsClientOptions{});
  const auto before = Clock::now();
  StatusOr<std::vector<HelloReply>> refused = client.Hello();
  EXPECT_EQ(refused.status().code(), StatusCode::kPermissionDenied) << refused.status();
  EXPECT_NE(refused.status().message().find("requires the job's secret"), std::string::npos) << refused.status();
  EXPECT_LT(Clock::now() - before, milliseconds(5000));
  ExpectServing();
  EXPECT_EQ(server_->stats().variables, 1u);
}

TEST_F(ConnectionsTest, AClientWithAnotherSecretIsRefusedAndLearnsNothing) {
  Start();
  StatusOr<std::shared_ptr<const Secret>> other = Secret::Generate();
  ASSERT_OK(other);
  RawSocket raw(port_);
  ASSERT_TRUE(raw.ok());
  const Status s = raw.Handshake(ClientCredentials{*other, PeerRole::kChief, 0});
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(raw.WaitForClose(milliseconds(5000)));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().handshakes_failed >= 1; }));
  // Through the real transport: calls fail (by their deadline), nothing is created.
  AsioTransportOptions wrong;
  wrong.credentials = ClientCredentials{*other, PeerRole::kChief, 0};
  AsioTransport transport(loop_, {server_->endpoint()}, wrong);
  PsClientOptions po;
  po.timeout = milliseconds(1500);
  PsClient client(&transport, po);
  Status created = client.Create({Spec("evil", {1024})}, OptimizerSpec{}, TrainingMode{});
  EXPECT_FALSE(created.ok());
  EXPECT_NE(created.message().find("is this process's secret the job's secret"), std::string::npos) << created;
  EXPECT_EQ(server_->stats().variables, 0u);
  EXPECT_EQ(server_->stats().connections_accepted, 0u);
  ExpectServing();
}

TEST_F(ConnectionsTest, AReplayedHandshakeIsRefused) {
  Start();
  // A real client's handshake, recorded on the wire...
  RawSocket first(port_);
  ASSERT_TRUE(first.ok());
  std::string server_hello, proof;
  ASSERT_TRUE(first.Receive(kServerHelloBytes, &server_hello, milliseconds(5000)));
  ClientHandshake honest(TestCredentials());
  StatusOr<std::string> recorded = honest.OnServerHello(server_hello);
  ASSERT_OK(recorded);
  ASSERT_TRUE(first.Send(*recorded));
  ASSERT_TRUE(first.Receive(kServerProofBytes, &proof, milliseconds(5000)));
  ASSERT_OK(honest.OnServerProof(proof));
  // ...replayed on a new connection, whose server nonce is another.
  RawSocket replay(port_);
  ASSERT_TRUE(replay.ok());
  std::string fresh_hello;
  ASSERT_TRUE(replay.Receive(kServerHelloBytes, &fresh_hello, milliseconds(5000)));
  EXPECT_NE(fresh_hello, server_hello);
  ASSERT_TRUE(replay.Send(*recorded));
  EXPECT_TRUE(replay.WaitForClose(milliseconds(5000)));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().handshakes_failed >= 1; }));
  EXPECT_EQ(server_->stats().connections_accepted, 1u);  // the first only
  ExpectServing();
}

TEST_F(ConnectionsTest, AFrameSentBeforeTheHandshakeIsNeverParsed) {
  Start();
  for (FrameType type : {FrameType::kHello, FrameType::kCreateVariables, FrameType::kSnapshotPrepare}) {
    RawSocket raw(port_);
    ASSERT_TRUE(raw.ok());
    std::string control;
    if (type == FrameType::kHello) control = EncodeMessage(HelloRequest{1, {}});
    if (type == FrameType::kCreateVariables) {
      CreateRequest req;
      control = EncodeMessage(req);
    }
    if (type == FrameType::kSnapshotPrepare) {
      SnapshotPrepareRequest req;
      req.step = 1;
      req.model_dir = root_ + "/elsewhere";
      control = EncodeMessage(req);
    }
    raw.Send(RawFrame(type, control));
    EXPECT_TRUE(raw.WaitForClose(milliseconds(5000)));
  }
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().handshakes_failed >= 3; }));
  EXPECT_EQ(server_->stats().frames_rejected, 0u);   // not read as frames at all
  EXPECT_EQ(server_->stats().requests_failed, 0u);   // nor dispatched
  EXPECT_FALSE(fs::exists(root_ + "/elsewhere"));
  ExpectServing();
}

// --- Control operations ------------------------------------------------------------

TEST_F(ConnectionsTest, AWorkerCannotCreateSnapshotOrRestore) {
  Start();
  Client worker = Connect(PeerRole::kWorker, 1, milliseconds(1500));
  Status created = worker.ps->Create({Spec("mine", {4})}, OptimizerSpec{}, TrainingMode{});
  EXPECT_FALSE(created.ok());
  EXPECT_NE(created.message().find("only the chief creates variables"), std::string::npos) << created;
  EXPECT_EQ(server_->stats().variables, 0u);

  ExpectServing();  // the chief creates "w"
  // Now the worker may declare what the chief created, but not more.
  EXPECT_OK(worker.ps->Create({Spec("w", {8})}, OptimizerSpec{}, TrainingMode{}));
  created = worker.ps->Create({Spec("w", {8}), Spec("extra", {2})}, OptimizerSpec{}, TrainingMode{});
  EXPECT_FALSE(created.ok());
  EXPECT_EQ(server_->stats().variables, 1u);

  SnapshotPrepareRequest prepare;
  prepare.step = 1;
  prepare.model_dir = root_ + "/model";
  prepare.names = {"w"};
  EXPECT_EQ(worker.ps->SnapshotPrepare(prepare).status().code(), StatusCode::kPermissionDenied);
  SnapshotRestoreRequest restore;
  restore.model_dir = root_ + "/model";
  restore.step = 1;
  restore.variables = {"w"};
  restore.saved_names = {"w"};
  EXPECT_EQ(worker.ps->SnapshotRestore(restore).status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(server_->stats().snapshots_written, 0u);
}

TEST_F(ConnectionsTest, SnapshotsAndRestoresNamingAnotherDirectoryAreRefused) {
  Start();
  ExpectServing();
  Client chief = Connect();
  for (const std::string& dir : {root_ + "/elsewhere", std::string("/tmp"), root_ + "/model/../elsewhere",
                                 root_}) {
    SnapshotPrepareRequest prepare;
    prepare.step = 1;
    prepare.model_dir = dir;
    prepare.names = {"w"};
    StatusOr<SnapshotPrepareReply> p = chief.ps->SnapshotPrepare(prepare);
    EXPECT_EQ(p.status().code(), StatusCode::kPermissionDenied) << dir << ": " << p.status();
    SnapshotRestoreRequest restore;
    restore.model_dir = dir;
    restore.step = 1;
    restore.variables = {"w"};
    restore.saved_names = {"w"};
    StatusOr<SnapshotRestoreReply> r = chief.ps->SnapshotRestore(restore);
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << dir << ": " << r.status();
  }
  EXPECT_FALSE(fs::exists(root_ + "/elsewhere"));
  EXPECT_EQ(server_->stats().snapshots_written, 0u);
}

// --- Limits ---------------------------------------------------------------------

TEST_F(ConnectionsTest, ConnectionsBeyondTheCapAreRefusedAndTheCapFitsTheFileLimit) {
  ConnectionLimits limits;
  limits.max_connections = 4;
  Start(limits);
  std::vector<std::unique_ptr<RawSocket>> held;
  for (int i = 0; i < 4; ++i) held.push_back(Authenticated());
  RawSocket over(port_);
  ASSERT_TRUE(over.ok());  // the kernel accepts; the server closes it at once
  EXPECT_TRUE(over.WaitForClose(milliseconds(5000)));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().connections_refused >= 1; }));
  held.clear();  // room again: a legitimate client connects
  EXPECT_TRUE(WaitUntil([&] {
    RawSocket probe(port_);
    return probe.ok() && probe.Handshake(TestCredentials(), milliseconds(1000)).ok();
  }));
  ExpectServing();

  // The cap stays below the descriptor limit, with room for databases.
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_cur >= 400) {
    struct rlimit lower = saved;
    lower.rlim_cur = 400;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lower), 0);
    const int effective = EffectiveMaxConnections(100000);
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
    EXPECT_GT(effective, 0);
    EXPECT_LE(effective, 400 - 64);
  }
  EXPECT_EQ(EffectiveMaxConnections(10), 10);
}

TEST_F(ConnectionsTest, AHandshakeThatDoesNotFinishInTimeIsClosed) {
  ConnectionLimits limits;
  limits.handshake_timeout = milliseconds(200);
  Start(limits);
  RawSocket silent(port_);  // connects and says nothing
  ASSERT_TRUE(silent.ok());
  RawSocket partial(port_);  // half a client hello
  ASSERT_TRUE(partial.ok());
  partial.Send(std::string(kClientHelloBytes / 2, 'C'));
  const auto before = Clock::now();
  EXPECT_TRUE(silent.WaitForClose(milliseconds(5000)));
  EXPECT_TRUE(partial.WaitForClose(milliseconds(5000)));
  EXPECT_LT(Clock::now() - before, milliseconds(4000));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().handshakes_failed >= 2; }));
  ExpectServing();
}

TEST_F(ConnectionsTest, AnIdleConnectionIsClosedAndARealClientReconnectsByItself) {
  ConnectionLimits limits;
  limits.idle_timeout = milliseconds(300);
  Start(limits);
  auto idle = Authenticated();
  EXPECT_TRUE(idle->WaitForClose(milliseconds(5000)));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().connections_timed_out >= 1; }));
  // A client's idle connection goes the same way; its next call reconnects.
  Client chief = Connect();
  ASSERT_OK(chief.ps->Create({Spec("w", {8})}, OptimizerSpec{}, TrainingMode{}));
  const uint64_t accepted = server_->stats().connections_accepted;
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().connections_timed_out >= 2; }));
  EXPECT_OK(chief.ps->Pull({"w"}));
  EXPECT_GT(server_->stats().connections_accepted, accepted);
}

TEST_F(ConnectionsTest, ATruncatedFrameAndASlowlorisAreClosedByTheirDeadline) {
  ConnectionLimits limits;
  limits.read_timeout = milliseconds(300);
  limits.min_receive_rate = 1 << 20;
  Start(limits);
  const std::string frame = RawFrame(FrameType::kHello, EncodeMessage(HelloRequest{1, {}}));
  // Half a header, then nothing.
  auto truncated = Authenticated();
  truncated->Send(frame.substr(0, kFrameHeaderBytes / 2));
  // The whole frame, one byte every 50 ms (it would take seconds).
  auto slow = Authenticated();
  const auto before = Clock::now();
  bool closed = false;
  for (size_t i = 0; i < frame.size() && !closed; ++i) {
    if (!slow->Send(frame.substr(i, 1))) break;
    closed = slow->WaitForClose(milliseconds(50));
  }
  if (!closed) closed = slow->WaitForClose(milliseconds(5000));
  EXPECT_TRUE(closed);
  EXPECT_LT(Clock::now() - before, milliseconds(3000));
  EXPECT_TRUE(truncated->WaitForClose(milliseconds(5000)));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().connections_timed_out >= 2; }));
  ExpectServing();
}

// A claim earns no time: a header that claims 1 GiB and stalls is closed
// by the frame timeout, not after the 17 minutes 1 GiB would take at the
// minimum rate; a frame that keeps arriving earns its time as it comes.
TEST_F(ConnectionsTest, AStalledClaimIsClosedByTheFrameTimeoutAlone) {
  ConnectionLimits limits;
  limits.read_timeout = milliseconds(300);
  Start(limits);
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kPush);
  f.request_id = 9;
  char byte = 0;
  f.data.push_back(ByteSpan{&byte, uint64_t{1} << 30});
  f.Seal();
  auto claimer = Authenticated();
  const auto before = Clock::now();
  ASSERT_TRUE(claimer->Send(std::string(reinterpret_cast<const char*>(f.header_bytes()), kFrameHeaderBytes) +
                            std::string(1000, 'x')));
  EXPECT_TRUE(claimer->WaitForClose(milliseconds(10000)));
  EXPECT_LT(Clock::now() - before, milliseconds(5000));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().connections_timed_out >= 1; }));
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().payload_bytes_reserved == 0; }));
  // A 64 MiB push from a real client takes longer than nothing, and passes.
  Client chief = Connect();
  ASSERT_OK(chief.ps->Create({Spec("big", {16 << 20})}, OptimizerSpec{}, TrainingMode{}));
  PushBatch batch;
  batch.gradients.emplace("big", Tensor(DType::kFloat32, Shape{16 << 20}));
  EXPECT_OK(chief.ps->Push(batch));
}

TEST_F(ConnectionsTest, HeadersClaimingAGibibyteCommitNeitherMemoryNorTheBudget) {
  ConnectionLimits limits;
  limits.max_pending_payload_bytes = uint64_t{3} << 30;  // room for all three claims, were they charged
  limits.read_timeout = milliseconds(30000);
  Start(limits);
  ExpectServing();
  const uint64_t rss_before = ResidentBytes();
  // A push header whose data_len claims 1 GiB, sealed as a sender would
  // (the span is never read: only its length goes into the header).
  const uint64_t claim = uint64_t{1} << 30;
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kPush);
  f.request_id = 9;
  char byte = 0;
  f.data.push_back(ByteSpan{&byte, claim});
  f.Seal();
  const std::string header(reinterpret_cast<const char*>(f.header_bytes()), kFrameHeaderBytes);
  std::vector<std::unique_ptr<RawSocket>> claimers;
  for (int i = 0; i < 3; ++i) {
    claimers.push_back(Authenticated());
    ASSERT_TRUE(claimers.back()->Send(header + std::string(4096, 'x')));
  }
  // Each has the first piece of its buffer, 1 MiB, and no more.
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().payload_bytes_reserved == 3 * kInitialPayloadBuffer; }))
      << server_->stats().payload_bytes_reserved;
  // A legitimate client is not held up by them.
  Client chief = Connect();
  ASSERT_OK(chief.ps->Create({Spec("w", {8})}, OptimizerSpec{}, TrainingMode{}));
  ASSERT_OK(chief.ps->Pull({"w"}));
  const uint64_t rss_after = ResidentBytes();
  EXPECT_LT(rss_after, rss_before + (uint64_t{64} << 20))
      << "resident set grew by " << (rss_after - rss_before) / (1 << 20) << " MiB for three 1 GiB claims";
  claimers.clear();
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().payload_bytes_reserved == 0; }));
}

TEST_F(ConnectionsTest, AFrameLargerThanTheWholePayloadBudgetIsRefusedFromItsHeader) {
  ConnectionLimits limits;
  limits.max_pending_payload_bytes = 1 << 20;
  Start(limits);
  ExpectServing();
  Client chief = Connect(PeerRole::kChief, 0, milliseconds(3000));
  PushBatch batch;
  // 2 MiB of gradient for a variable of that size, over the 1 MiB budget.
  ASSERT_OK(chief.ps->Create({Spec("w", {8}), Spec("big", {1 << 19})}, OptimizerSpec{}, TrainingMode{}));
  Tensor g(DType::kFloat32, Shape{1 << 19});
  batch.gradients.emplace("big", std::move(g));
  Status pushed = chief.ps->Push(batch);
  EXPECT_FALSE(pushed.ok());
  EXPECT_TRUE(WaitUntil([&] { return server_->stats().frames_rejected >= 1; }));
  EXPECT_OK(chief.ps->Pull({"w"}));  // small frames still go through (on a new connection)
}

// The server process out of file descriptors: its accepts fail while peers
// wait in the backlog. It backs off (no spinning), logs one line (not ten a
// second), and serves again once descriptors are free.
TEST_F(ConnectionsTest, AcceptErrorsBackOffAndAreLoggedOnceAndTheServerRecovers) {
  Start();
  ExpectServing();
  struct rlimit saved {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  struct rlimit low = saved;
  low.rlim_cur = 512;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> held;  // every descriptor left, so the server's accept() fails with EMFILE
  for (int fd = ::open("/dev/null", O_RDONLY); fd >= 0; fd = ::open("/dev/null", O_RDONLY)) held.push_back(fd);
  // Peers in another process (its own descriptors) wait in the backlog.
  const pid_t child = ::fork();
  if (child == 0) {
    // Only system calls here: a forked copy of a threaded process must not allocate.
    for (int fd : held) ::close(fd);
    RawSocket a(port_), b(port_), c(port_), d(port_);
    ::poll(nullptr, 0, 1500);  // hold them for 1.5 s: no hello comes while the server is out of descriptors
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  const uint64_t errors = server_->stats().accept_errors;
  for (int fd : held) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_GE(errors, 2u);
  EXPECT_LE(errors, 12u) << "a back-off of 10 ms doubling to 1 s allows about 8 retries in 1.5 s";
  const std::string lines = log_.text();
  size_t logged = 0;
  for (size_t at = lines.find("accept failed"); at != std::string::npos; at = lines.find("accept failed", at + 1)) {
    ++logged;
  }
  EXPECT_EQ(logged, 1u) << lines;
  // Descriptors are back: the server accepts again (after at most its back-off).
  EXPECT_TRUE(WaitUntil([&] {
    RawSocket probe(port_);
    return probe.ok() && probe.Handshake(TestCredentials(), milliseconds(2000)).ok();
  }));
  ExpectServing();
}

}  // namespace
}  // namespace cairn
