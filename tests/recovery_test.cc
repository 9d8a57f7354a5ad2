// Fault recovery with every party in one process: real Servers on
// 127.0.0.1, each worker with its own transport, PsClient and Session.
//
//   - sync steps with a worker that never pushes ("continue" and "fail"),
//     and a restarted worker incarnation that redoes the step it died in;
//   - a server stopped and replaced on its port with ServerOptions
//     restore_dir: it serves the newest snapshot's shards and slots, says so
//     in Hello, and is seen by CheckForRestarts;
//   - a 2-server, 2-worker sync job whose server 1 is replaced mid-run: the
//     workers roll back to the snapshot (Trainer::Recover) and the job ends
//     bit-identical to an uninterrupted run.
//
// Ordering comes from replies and polled state with deadlines, never from
// sleeping for a guessed time.
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "common/messages.h"
#include "common/snapshot/model_dir.h"
#include "ps/server.h"
#include "common/snapshot/snapshot_db.h"
#include "worker/dataset.h"
#include "worker/model.h"
#include "worker/ps_client.h"
#include "worker/saver.h"
#include "worker/session.h"
#include "worker/trainer.h"
#include "tests/push_frame.h"
#include "tests/snapshot_compare.h"
#include "tests/toy_classification.h"
#include "tests/status_matchers.h"
#include "tests/test_worker.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Polls `done` until it holds or `timeout` passes; returns its last value.
template <class Pred>
bool PollUntil(Pred done, milliseconds timeout = milliseconds(30000)) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// Starts server `index` of `num_servers` on `port` (0: any), restoring from
// `restore_dir` (empty: none), writing snapshots beneath `model_dir` (empty:
// `restore_dir`). A port that a stopped server has just given
// up may be reported in use for a moment: that is retried for a while.
StatusOr<std::unique_ptr<Server>> StartServer(EventLoop& loop, int index, int num_servers, uint16_t port,
                                              const std::string& restore_dir, const std::string& model_dir = "") {
  ServerOptions o;
  o.model_dir = model_dir;
  o.index = index;
  o.num_servers = num_servers;
  o.port = port;
  o.restore_dir = restore_dir;
  StatusOr<std::unique_ptr<Server>> started = Server::Start(loop, WithTestAuth(o));
  const auto deadline = Clock::now() + milliseconds(10000);
  while (!started.ok() && started.status().code() == StatusCode::kUnavailable && port != 0 &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
    started = Server::Start(loop, WithTestAuth(o));
  }
  return started;
}

// --- Sync steps through real servers -------------------------------------------

VariableSpec FloatSpec(const std::string& name, Shape shape) {
  VariableSpec s{name, std::move(shape), DType::kFloat32, {}, true};
  s.init.kind = InitKind::kZeros;
  return s;
}

VariableSpec StepSpec() {
  VariableSpec s{"global_step", {}, DType::kInt64, {}, false};
  s.init.kind = InitKind::kZeros;
  return s;
}

OptimizerSpec Sgd(double lr) {
  OptimizerSpec o;
  o.kind = "sgd";
  o.learning_rate = lr;
  return o;
}

TrainingMode SyncMode(int workers, int64_t timeout_ms, const std::string& missing) {
  TrainingMode m;
  m.consistency = Consistency::kSync;
  m.num_workers = workers;
  m.sync_timeout_ms = timeout_ms;
  m.missing_workers = *ParseMissingWorkers(missing);
  return m;
}

// A worker that pushes hand-made gradients of "w" [4, 2] (split by rows
// over the servers) with global_step counted.
struct RawWorker {
  RawWorker(EventLoop& loop, const std::vector<Endpoint>& servers, int id, uint64_t incarnation = 0) {
    transport = std::make_unique<AsioTransport>(loop, servers, TestTransportOptions());
    PsClientOptions o;
    o.worker_id = id;
    o.incarnation = incarnation;
    o.timeout = milliseconds(20000);
    o.placement.split_threshold_bytes = 16;
    client = std::make_unique<PsClient>(transport.get(), o);
  }

  Status Create(const TrainingMode& mode) {
    return client->Create({FloatSpec("w", {4, 2}), StepSpec()}, Sgd(0.5), mode);
  }

  // One train step whose gradient is `g` everywhere.
  Status Step(float g) {
    PushBatch b;
    b.gradients["w"] = Tensor::FromVector({4, 2}, std::vector<float>(8, g));
    b.train_step = true;
    b.global_step = "global_step";
    return client->Push(b);
  }

  std::vector<float> W() {
    auto v = client->Pull({"w"});
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) return {};
    const Tensor& t = v->at("w");
    return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
  }

  int64_t GlobalStep() {
    auto v = client->Pull({"global_step"});
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? v->at("global_step").data<int64_t>()[0] : -1;
  }

  std::unique_ptr<AsioTransport> transport;
  std::unique_ptr<PsClient> client;
};

class SyncRecoveryTest : public ::testing::Test {
 protected:
  void StartServers(int n) {
    for (int i = 0; i < n; ++i) {
      auto s = StartServer(loop_, i, n, 0, "");
      ASSERT_TRUE(s.ok()) << s.status();
      endpoints_.push_back((*s)->endpoint());
      servers_.push_back(std::move(*s));
    }
  }

  EventLoop loop_{2};
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<Endpoint> endpoints_;
};

TEST_F(SyncRecoveryTest, ContinueAppliesAStepWithThePresentWorkersAndLaterStepsDoNotWaitForTheMissingOne) {
  StartServers(2);
  const milliseconds timeout(1500);
  const TrainingMode mode = SyncMode(3, timeout.count(), "continue");
  RawWorker w0(loop_, endpoints_, 0), w1(loop_, endpoints_, 1), w2(loop_, endpoints_, 2);
  ASSERT_OK(w0.Create(mode));
  ASSERT_OK(w1.Create(mode));
  ASSERT_OK(w2.Create(mode));
  ASSERT_EQ(w0.client->placement().SlicesOf("w")->size(), 2u);

  // Step 0: worker 2 never pushes. After the timeout the step is applied
  // with workers 0 and 1: w -= 0.5 * mean(1, 3).
  auto start = Clock::now();
  std::future<Status> s1 = std::async(std::launch::async, [&] { return w1.Step(3); });
  Status s0 = w0.Step(1);
  EXPECT_TRUE(s0.ok()) << s0;
  EXPECT_OK(s1.get());
  EXPECT_GE(Clock::now() - start, timeout);
  EXPECT_EQ(w0.W(), std::vector<float>(8, -1.0f));
  EXPECT_EQ(w0.GlobalStep(), 1);

  // Step 1: the two present workers make the step; nobody waits for worker 2.
  start = Clock::now();
  s1 = std::async(std::launch::async, [&] { return w1.Step(4); });
  s0 = w0.Step(2);
  EXPECT_TRUE(s0.ok()) << s0;
  EXPECT_OK(s1.get());
  EXPECT_LT(Clock::now() - start, timeout) << "step 1 waited for the dropped worker";
  EXPECT_EQ(w0.W(), std::vector<float>(8, -2.5f));
  EXPECT_EQ(w0.GlobalStep(), 2);

  // The dropped worker is refused, and its push changes nothing.
  Status late = w2.Step(100);
  EXPECT_EQ(late.code(), StatusCode::kFailedPrecondition) << late;
  EXPECT_TRUE(Contains(late.message(), "worker 2 was dropped")) << late;
  EXPECT_EQ(w0.W(), std::vector<float>(8, -2.5f));
  EXPECT_EQ(w0.GlobalStep(), 2);
}

TEST_F(SyncRecoveryTest, FailFailsTheStepNamingTheMissingWorkerAndAppliesNothing) {
  StartServers(2);
  const TrainingMode mode = SyncMode(3, 300, "fail");
  RawWorker w0(loop_, endpoints_, 0), w1(loop_, endpoints_, 1);
  ASSERT_OK(w0.Create(mode));
  ASSERT_OK(w1.Create(mode));
  const auto start = Clock::now();
  std::future<Status> s1 = std::async(std::launch::async, [&] { return w1.Step(3); });
  Status s0 = w0.Step(1);
  Status other = s1.get();
  for (const Status& s : {s0, other}) {
    EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s;
    EXPECT_TRUE(Contains(s.message(), "worker(s) 2 did not push within 300 ms")) << s;
  }
  EXPECT_LT(Clock::now() - start, milliseconds(10000));
  EXPECT_EQ(w0.W(), std::vector<float>(8, 0.0f));
  EXPECT_EQ(w0.GlobalStep(), 0);
}

// A push of `g` to every element of "w" [4] on one server, as a dead worker
// process sent it (built by hand so that it can be sent without blocking).
OutFrame PushFrame(int32_t worker, uint64_t incarnation, uint64_t sequence, int64_t step, float g) {
  PushRequest req;
  req.worker_id = worker;
  req.incarnation = incarnation;
  req.sequence = sequence;
  req.train_step = true;
  req.step = step;
  req.global_step = "global_step";
  return testing::PushOfW(req, std::vector<float>(4, g));
}

Status ReplyStatus(const StatusOr<InFrame>& reply) {
  if (!reply.ok()) return reply.status();
  StatusReply r;
  RETURN_IF_ERROR(DecodeMessage(reply->control, &r, "reply"));
  return r.status.ToStatus();
}

TEST(SyncRestartedWorker, ANewIncarnationsPushForTheSameStepSupersedesTheDeadOnes) {
  // The server handles requests on one thread, in the order they arrive on
  // a connection: a reply to a later request on the dead worker's
  // connection shows its push has reached the step.
  EventLoop server_loop(1), loop(2);
  auto server = StartServer(server_loop, 0, 1, 0, "");
  ASSERT_OK(server);
  const std::vector<Endpoint> endpoints = {(*server)->endpoint()};
  const TrainingMode mode = SyncMode(2, 20000, "fail");
  auto create = [&](PsClient& c) { return c.Create({FloatSpec("w", {4}), StepSpec()}, Sgd(0.5), mode); };

  // Worker 1's first process pushes step 0 and dies before its reply.
  AsioTransport dead(loop, endpoints, TestTransportOptions());
  PsClientOptions dead_options;
  dead_options.worker_id = 1;
  dead_options.incarnation = 1111;
  PsClient dead_client(&dead, dead_options);
  ASSERT_OK(create(dead_client));
  std::promise<Status> dead_reply;
  dead.Call(0, PushFrame(1, 1111, 1, 0, 100.0f), DeadlineAfter(milliseconds(20000)),
            [&](StatusOr<InFrame> r) { dead_reply.set_value(ReplyStatus(r)); });
  ASSERT_OK(dead_client.Hello());  // after the push on the same connection

  // Its restart (same worker id, another incarnation) redoes step 0.
  AsioTransport restarted(loop, endpoints, TestTransportOptions());
  PsClientOptions o;
  o.worker_id = 1;
  o.incarnation = 2222;
  o.timeout = milliseconds(20000);
  PsClient again(&restarted, o);
  ASSERT_OK(create(again));
  std::future<Status> again_reply = std::async(std::launch::async, [&] {
    PushBatch b;
    b.gradients["w"] = Tensor::FromVector({4}, std::vector<float>(4, 3.0f));
    b.train_step = true;
    b.global_step = "global_step";
    return again.Push(b);
  });
  // The dead push is answered once the new one has replaced it.
  std::future<Status> dead_future = dead_reply.get_future();
  ASSERT_EQ(dead_future.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  Status superseded = dead_future.get();
  EXPECT_EQ(superseded.code(), StatusCode::kAborted) << superseded;
  EXPECT_TRUE(Contains(superseded.message(), "superseded")) << superseded;

  // Worker 0 completes the step with the new incarnation's gradient.
  AsioTransport t0(loop, endpoints, TestTransportOptions());
  PsClientOptions o0;
  o0.worker_id = 0;
  o0.timeout = milliseconds(20000);
  PsClient w0(&t0, o0);
  ASSERT_OK(create(w0));
  PushBatch b;
  b.gradients["w"] = Tensor::FromVector({4}, std::vector<float>(4, 1.0f));
  b.train_step = true;
  b.global_step = "global_step";
  EXPECT_OK(w0.Push(b));
  EXPECT_OK(again_reply.get());
  auto v = w0.Pull({"w", "global_step"});
  ASSERT_OK(v);
  const Tensor& w = v->at("w");
  EXPECT_EQ(std::vector<float>(w.data<float>(), w.data<float>() + 4), std::vector<float>(4, -1.0f));  // 0.5 * mean(1, 3)
  EXPECT_EQ(v->at("global_step").data<int64_t>()[0], 1);

  // And the two go on together.
  b.gradients["w"] = Tensor::FromVector({4}, std::vector<float>(4, 2.0f));
  std::future<Status> next = std::async(std::launch::async, [&] { return w0.Push(b); });
  EXPECT_OK(again.Push(b));
  EXPECT_OK(next.get());
  v = w0.Pull({"w", "global_step"});
  ASSERT_OK(v);
  EXPECT_EQ(v->at("w").data<float>()[0], -2.0f);
  EXPECT_EQ(v->at("global_step").data<int64_t>()[0], 2);
}

SaverOptions SaveTo(const std::string& model_dir) {
  SaverOptions o;
  o.model_dir = model_dir;
  return o;
}

// --- Snapshots read back shard by shard --------------------------------------------

// (variable, part, row_begin) -> the bytes of that part of the shard starting
// at row_begin (part 0 the values, 1 + i slot i).
using ShardContents = std::map<std::tuple<std::string, int, int64_t>, std::string>;

// Every shard of a committed snapshot, with the server that wrote it.
ShardContents ReadShards(const std::string& dir, int64_t step, std::map<std::pair<std::string, int64_t>, int>* servers) {
  ShardContents out;
  testing::ForEachShardPart(dir, step, [&](const SnapshotManifest&, const ManifestShard& ms, const ShardRecord&,
                                           int part, const Tensor& bytes) {
    if (servers) (*servers)[{ms.variable, ms.row_begin}] = ms.server;
    out[{ms.variable, part, ms.row_begin}] = std::string(static_cast<const char*>(bytes.raw()), bytes.byte_size());
  });
  return out;
}

// One worker of the classifier tests: the 20-feature mlp (its weights split
// over the servers) with adam, in sync mode, and its own connection.
testing::WorkerOptions Classifier(int id, int num_workers) {
  testing::WorkerOptions o;
  o.id = id;
  o.build = testing::Mlp(0.01, num_workers);
  o.session.optimizer.kind = "adam";
  o.session.optimizer.learning_rate = 0.01;
  o.session.mode = SyncMode(num_workers, 20000, "fail");
  return o;
}
using testing::Worker;

class RestoreOnStartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/recovery_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override {
    servers_.clear();
    fs::remove_all(root_);
  }

  void StartServers(int n, const std::string& restore_dir) {
    for (int i = 0; i < n; ++i) {
      auto s = StartServer(loop_, i, n, 0, restore_dir, root_);
      ASSERT_TRUE(s.ok()) << s.status();
      endpoints_.push_back((*s)->endpoint());
      servers_.push_back(std::move(*s));
    }
  }

  std::string Dir(const std::string& name) const { return root_ + "/" + name; }

  // Declared first: outlives every server and worker a test makes.
  EventLoop loop_{2};
  std::string root_;
  std::vector<std::unique_ptr<Server>> servers_;
  std::vector<Endpoint> endpoints_;
};

TEST_F(RestoreOnStartTest, AReplacedServerServesTheNewestSnapshotsShardsAndSlotsBitForBit) {
  const std::string model = Dir("model");
  StartServers(2, model);  // nothing there yet: both start empty
  for (auto& s : servers_) {
    EXPECT_EQ(s->stats().variables, 0u);
    EXPECT_EQ(s->stats().restored_step, -1);
  }
  Worker w(loop_, endpoints_, Classifier(0, 1));
  for (int64_t b = 0; b < 5; ++b) ASSERT_OK(w.Step(b));
  auto saver = Saver::Create(&w.session(), &w.client(), SaveTo(model));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(5));
  const std::vector<std::string> names = (*saver)->saved_variables();
  const auto at5 = w.Values(names);
  ASSERT_EQ(at5.size(), names.size());

  // Two more steps, saved elsewhere: server 0 keeps these, server 1's
  // replacement must come back at step 5.
  for (int64_t b = 5; b < 7; ++b) ASSERT_OK(w.Step(b));
  auto elsewhere = Saver::Create(&w.session(), &w.client(), SaveTo(Dir("at7")));
  ASSERT_OK(elsewhere);
  ASSERT_OK((*elsewhere)->Save(7));
  const auto at7 = w.Values(names);
  ASSERT_EQ(at7.size(), names.size());

  auto first = w.client().CheckForRestarts();  // learns who the servers are
  ASSERT_OK(first);
  EXPECT_TRUE(first->empty());
  auto before = w.client().Hello();
  ASSERT_OK(before);
  const uint16_t port = endpoints_[1].port;
  servers_[1]->Stop();
  auto replacement = StartServer(loop_, 1, 2, port, model, root_);
  ASSERT_OK(replacement);
  servers_[1] = std::move(*replacement);
  StatusOr<SnapshotManifest> manifest = ReadManifest(model, 5);
  ASSERT_OK(manifest);
  uint64_t shards_on_1 = 0;
  for (const ManifestShard& s : manifest->shards) shards_on_1 += s.server == 1;
  ASSERT_GT(shards_on_1, 0u);
  ServerStats stats = servers_[1]->stats();
  EXPECT_EQ(stats.restored_step, 5);
  EXPECT_EQ(stats.restores, 1u);
  EXPECT_EQ(stats.variables, shards_on_1);

  // Values: every slice on server 1 as at step 5, on server 0 as at step 7.
  const auto mixed = w.Values(names);
  ASSERT_EQ(mixed.size(), names.size());
  const Placement& placement = w.client().placement();
  int split = 0;
  for (const std::string& name : names) {
    auto slices = placement.SlicesOf(name);
    ASSERT_OK(slices);
    split += slices->size() > 1;
    const Tensor& got = mixed.at(name);
    const uint64_t row_bytes = got.rows() == 0 ? got.byte_size() : got.byte_size() / std::max<int64_t>(1, got.rows());
    for (const ShardSlice& s : *slices) {
      const Tensor& want = (s.server == 1 ? at5 : at7).at(name);
      const uint64_t offset = s.row_begin * row_bytes, bytes = std::max<int64_t>(1, s.rows()) * row_bytes;
      EXPECT_EQ(std::memcmp(static_cast<const char*>(got.raw()) + offset,
                            static_cast<const char*>(want.raw()) + offset, bytes),
                0)
          << name << " rows [" << s.row_begin << ", " << s.row_end << ") on server " << s.server;
    }
  }
  EXPECT_GT(split, 0) << "no variable is split over both servers";

  // The cluster is not at one step now, so a snapshot of it is refused: in
  // sync mode server 1 is at step 5, not at 7 (the chief rolls every server
  // back instead; the slots it restored are checked bit for bit by the
  // end-to-end recovery test below).
  auto again = Saver::Create(&w.session(), &w.client(), SaveTo(Dir("again")));
  ASSERT_OK(again);
  StatusOr<SnapshotStats> mixed_save = (*again)->Save(7);
  ASSERT_FALSE(mixed_save.ok());
  EXPECT_EQ(mixed_save.status().code(), StatusCode::kFailedPrecondition) << mixed_save.status();
  EXPECT_TRUE(Contains(mixed_save.status().message(), "server 1 is at sync step 5")) << mixed_save.status();
  EXPECT_FALSE(LatestCommittedStep(Dir("again")).ok());

  // Hello: a new incarnation that restored step 5, sync rounds continuing at 5.
  auto after = w.client().Hello();
  ASSERT_OK(after);
  EXPECT_EQ((*after)[0].incarnation, (*before)[0].incarnation);
  EXPECT_NE((*after)[1].incarnation, (*before)[1].incarnation);
  EXPECT_NE((*after)[1].incarnation, 0u);
  EXPECT_EQ((*after)[1].restored_step, 5);
  EXPECT_NE((*after)[1].restore_id, 0u);
  EXPECT_EQ((*after)[1].sync_step, 5);
  EXPECT_FALSE((*after)[1].restore_staged);
  EXPECT_EQ((*after)[1].variables, shards_on_1);
  EXPECT_EQ((*after)[0].restored_step, -1);

  // CheckForRestarts (the pulls above reconnected) names server 1 once.
  auto restarts = w.client().CheckForRestarts();
  ASSERT_OK(restarts);
  ASSERT_EQ(restarts->size(), 1u);
  EXPECT_EQ((*restarts)[0].server, 1);
  EXPECT_EQ((*restarts)[0].restored_step, 5);
  EXPECT_EQ((*restarts)[0].variables, shards_on_1);
  auto quiet = w.client().CheckForRestarts();
  ASSERT_OK(quiet);
  EXPECT_TRUE(quiet->empty());

  // The worker's next step (7) is refused by the restored server: the
  // cluster must roll back.
  Status step = w.Step(7);
  EXPECT_EQ(step.code(), StatusCode::kAborted) << step;
}

TEST_F(RestoreOnStartTest, ADirectoryWithoutASnapshotStartsEmpty) {
  ASSERT_OK(PrepareModelDir(Dir("empty")));  // a model directory, never saved to
  for (const std::string& dir : {Dir("empty"), Dir("missing")}) {
    auto s = StartServer(loop_, 0, 2, 0, dir, root_);
    ASSERT_OK(s);
    EXPECT_EQ((*s)->stats().variables, 0u) << dir;
    EXPECT_EQ((*s)->stats().restored_step, -1) << dir;
    EXPECT_EQ((*s)->stats().restores, 0u) << dir;
    AsioTransport t(loop_, {(*s)->endpoint()}, TestTransportOptions());
    PsClient c(&t, PsClientOptions{});
    auto hello = c.Hello();
    ASSERT_OK(hello);
    EXPECT_EQ((*hello)[0].restored_step, -1) << dir;
    EXPECT_EQ((*hello)[0].restore_id, 0u) << dir;
    EXPECT_EQ((*hello)[0].variables, 0u) << dir;
  }
}

TEST_F(RestoreOnStartTest, ASnapshotOfAnotherServerCountIsAFailedPrecondition) {
  const std::string model = Dir("model");
  StartServers(2, "");
  Worker w(loop_, endpoints_, Classifier(0, 1));
  ASSERT_OK(w.Step(0));
  auto saver = Saver::Create(&w.session(), &w.client(), SaveTo(model));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(1));

  auto s = StartServer(loop_, 1, 3, 0, model, root_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status();
  EXPECT_TRUE(Contains(s.status().message(), "written by 2 servers")) << s.status();
  EXPECT_TRUE(Contains(s.status().message(), "has 3")) << s.status();

  // A directory that is not a Cairn model directory is refused too.
  fs::create_directories(Dir("foreign"));
  { std::ofstream(Dir("foreign") + "/notes.txt") << "not a model"; }
  auto foreign = StartServer(loop_, 0, 2, 0, Dir("foreign"), root_);
  EXPECT_EQ(foreign.status().code(), StatusCode::kFailedPrecondition) << foreign.status();
}

// A replacement server binds the port as soon as Stop returns (Stop waits
// for the acceptor's close; it once only posted it, and about half of all
// immediate restarts failed with "Address already in use").
TEST(ServerStop, ThePortCanBeBoundAgainAsSoonAsStopReturns) {
  EventLoop loop(2);
  auto first = Server::Start(loop, WithTestAuth(ServerOptions{}));
  ASSERT_OK(first);
  std::unique_ptr<Server> server = std::move(*first);
  const uint16_t port = server->endpoint().port;
  int refused = 0;
  for (int i = 0; i < 50; ++i) {
    server->Stop();
    ServerOptions o;
    o.port = port;
    auto again = Server::Start(loop, WithTestAuth(o));
    if (!again.ok()) {
      ++refused;
      again = StartServer(loop, 0, 1, port, "");  // retried, so the loop goes on
      ASSERT_OK(again);
    }
    server = std::move(*again);
  }
  EXPECT_EQ(refused, 0) << refused << " of 50 restarts found the port still in use after Stop() returned";
}

// --- Start-up checks of the cluster --------------------------------------------

// A worker that lists the servers in another order than their indices
// (cluster files that differ, with no view to compare: the client checks the
// index each server answers with) declares nothing and says so.
TEST(ClusterCheck, AClientThatDialsTheServersInAnotherOrderIsRefusedBeforeDeclaringAnything) {
  EventLoop loop(2);
  std::vector<std::unique_ptr<Server>> servers;
  for (int i = 0; i < 2; ++i) {
    auto s = StartServer(loop, i, 2, 0, "");
    ASSERT_OK(s);
    servers.push_back(std::move(*s));
  }
  AsioTransport transport(loop, {servers[1]->endpoint(), servers[0]->endpoint()}, TestTransportOptions());
  PsClientOptions o;
  o.worker_id = 1;
  o.timeout = milliseconds(10000);
  PsClient client(&transport, o);
  Status created = client.Create({FloatSpec("w", {4, 2})}, OptimizerSpec{}, TrainingMode{});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.code(), StatusCode::kFailedPrecondition) << created;
  EXPECT_NE(created.message().find("worker 1 dialed server 0 and reached server 1"), std::string::npos) << created;
  EXPECT_EQ(servers[0]->stats().variables + servers[1]->stats().variables, 0u);
}

// A server with a view of the cluster refuses a Hello with another one.
TEST(ClusterCheck, AServerRefusesAWorkerWhoseClusterViewDiffersNamingBoth) {
  EventLoop loop(2);
  ServerOptions so;
  so.cluster = "servers [a:1], 2 worker(s)";
  auto server = Server::Start(loop, WithTestAuth(so));
  ASSERT_OK(server);
  AsioTransport transport(loop, {(*server)->endpoint()}, TestTransportOptions());
  PsClientOptions o;
  o.worker_id = 1;
  o.timeout = milliseconds(10000);
  o.cluster = "servers [a:1], 3 worker(s)";
  PsClient other(&transport, o);
  StatusOr<std::vector<HelloReply>> hello = other.Hello();
  ASSERT_FALSE(hello.ok());
  EXPECT_EQ(hello.status().code(), StatusCode::kFailedPrecondition) << hello.status();
  EXPECT_NE(hello.status().message().find("worker 1's cluster file says servers [a:1], 3 worker(s), server 0's "
                                          "says servers [a:1], 2 worker(s)"),
            std::string::npos)
      << hello.status();
  o.cluster = so.cluster;
  PsClient same(&transport, o);
  EXPECT_OK(same.Hello());
}

// Snapshots leave the start-up handshake "cairn/chief_ready" out, so a
// server that restores itself on start does not hold it. The chief's restart
// check (PsClient::CheckForRestarts, which Trainer runs after every step)
// declares the variables again, so the handshake exists and the chief can
// set it (Trainer::NoteServerRestarts does) before a late worker waits on it.
TEST_F(RestoreOnStartTest, TheChiefsRestartCheckDeclaresWhatTheSnapshotLeftOut) {
  const std::string model = Dir("model");
  StartServers(2, model);
  Worker chief(loop_, endpoints_, Classifier(0, 2));
  ASSERT_OK(chief.session().Run(chief.model().set_chief_ready));
  auto saver = Saver::Create(&chief.session(), &chief.client(), SaveTo(model));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(0));
  auto known = chief.client().CheckForRestarts();  // learns who the servers are
  ASSERT_OK(known);
  EXPECT_TRUE(known->empty());

  auto where = chief.client().placement().SlicesOf("cairn/chief_ready");
  ASSERT_OK(where);
  const int holder = where->front().server;
  const uint16_t port = endpoints_[holder].port;
  servers_[holder]->Stop();
  auto replacement = StartServer(loop_, holder, 2, port, model, root_);
  ASSERT_OK(replacement);
  servers_[holder] = std::move(*replacement);
  ASSERT_EQ(servers_[holder]->stats().restored_step, 0);

  // The restarted server does not know the handshake until it is declared again.
  auto before = chief.session().Run(chief.model().chief_ready);
  ASSERT_FALSE(before.ok());
  EXPECT_EQ(before.status().code(), StatusCode::kNotFound) << before.status();

  auto restarts = chief.client().CheckForRestarts();
  ASSERT_OK(restarts);
  ASSERT_EQ(restarts->size(), 1u);
  EXPECT_EQ(restarts->front().server, holder);
  EXPECT_EQ(restarts->front().restored_step, 0);
  ASSERT_OK(chief.session().Run(chief.model().set_chief_ready));

  Worker late(loop_, endpoints_, Classifier(1, 2));
  auto ready = late.session().Run(late.model().chief_ready);
  ASSERT_OK(ready);
  EXPECT_EQ(ready->data<int64_t>()[0], 1);
}

// --- A sync job survives a server restart ---------------------------------------------

constexpr int kJobWorkers = 2;
constexpr int64_t kJobSteps = 30;        // per worker; 16 a epoch, so the job crosses an epoch
constexpr int64_t kSnapshotEvery = 5;
constexpr int64_t kRestartAfter = 12;    // global steps before server 1 is replaced
constexpr int64_t kRestoredStep = 10;    // the newest snapshot by then

// What a worker process of the job holds, as launch/train_job.cc builds it.
struct JobWorker {
  std::unique_ptr<AsioTransport> transport;
  std::unique_ptr<PsClient> client;
  Graph graph;
  Model model;
  std::unique_ptr<Session> session;
  std::unique_ptr<Saver> saver;
};

SessionOptions JobSession() {
  SessionOptions o;
  o.optimizer.kind = "adam";
  o.optimizer.learning_rate = 0.01;
  o.mode = SyncMode(kJobWorkers, 30000, "fail");
  return o;
}

StatusOr<std::unique_ptr<JobWorker>> ConnectJobWorker(EventLoop& loop, const std::vector<Endpoint>& servers,
                                                      int worker, const std::string& model_dir) {
  auto w = std::make_unique<JobWorker>();
  w->transport = std::make_unique<AsioTransport>(loop, servers, TestTransportOptions());
  PsClientOptions po;
  po.worker_id = worker;
  po.timeout = milliseconds(30000);
  po.placement.split_threshold_bytes = 64;
  w->client = std::make_unique<PsClient>(w->transport.get(), po);
  ASSIGN_OR_RETURN(w->model, testing::Mlp(0.01, kJobWorkers, /*features=*/8, /*seed=*/3)(&w->graph));
  ASSIGN_OR_RETURN(w->session, Session::Create(&w->graph, w->client.get(), JobSession()));
  RETURN_IF_ERROR(w->session->Initialize());
  if (worker == 0 && !model_dir.empty()) {
    ASSIGN_OR_RETURN(w->saver, Saver::Create(w->session.get(), w->client.get(), SaveTo(model_dir)));
  }
  return w;
}

StatusOr<WorkerReport> RunJobWorker(EventLoop& loop, const std::vector<Endpoint>& servers, const Dataset& data,
                                    int worker, const std::string& model_dir, const Trainer::ProgressFn& progress) {
  ASSIGN_OR_RETURN(auto w, ConnectJobWorker(loop, servers, worker, model_dir));
  TrainerOptions o;
  o.worker = worker;
  o.num_workers = kJobWorkers;
  o.batch_size = 16;
  o.epochs = 2;
  o.max_steps = kJobSteps;
  o.log_every = 1;
  o.seed = 7;
  o.schedule.base = 0.01;
  o.ready_timeout = milliseconds(30000);
  o.snapshot_every_steps = kSnapshotEvery;
  o.max_recoveries = 3;
  o.recovery_timeout = milliseconds(30000);
  Trainer trainer(w->session.get(), &w->model, &data, nullptr, o);
  trainer.set_saver(w->saver.get());
  trainer.set_client(w->client.get());
  return trainer.Run(progress);
}

struct JobResult {
  std::vector<StatusOr<WorkerReport>> reports;
  std::map<std::string, Tensor> values;  // every variable but cairn/chief_ready, at the end
  bool restarted = false;
  Status restart_status;
  ServerStats replacement;               // server 1's at the end
};

// Runs the job on fresh servers with `model_dir`; with `restart_server`, the
// chief replaces server 1 (stopped, then started again on its port with
// restore_dir) once it has seen global step kRestartAfter and snapshot
// kRestoredStep is committed.
JobResult RunSyncJob(const std::string& model_dir, bool restart_server) {
  JobResult result;
  EventLoop loop(3);
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<Endpoint> endpoints;
  for (int i = 0; i < 2; ++i) {
    auto s = StartServer(loop, i, 2, 0, model_dir);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return result;
    endpoints.push_back((*s)->endpoint());
    servers.push_back(std::move(*s));
  }
  const Dataset data = testing::ToyClassification(512, 3);

  // Runs on the chief's thread between its steps: the other worker is then
  // inside its next step, waiting for the chief.
  Trainer::ProgressFn chief_progress = [&](const TrainProgress& p) {
    if (!restart_server || result.restarted || p.global_step < kRestartAfter) return;
    result.restarted = true;
    const bool committed = PollUntil([&] {
      StatusOr<int64_t> latest = LatestCommittedStep(model_dir);
      return latest.ok() && *latest >= kRestoredStep;
    });
    if (!committed) {
      result.restart_status = DeadlineExceeded("snapshot " + std::to_string(kRestoredStep) + " was never committed");
      return;
    }
    servers[1]->Stop();
    auto replacement = StartServer(loop, 1, 2, endpoints[1].port, model_dir);
    if (!replacement.ok()) {
      result.restart_status = replacement.status();
      return;
    }
    servers[1] = std::move(*replacement);
  };

  result.reports.assign(kJobWorkers, Status(Internal("worker did not run")));
  std::vector<std::thread> threads;
  for (int w = 0; w < kJobWorkers; ++w) {
    threads.emplace_back([&, w] {
      result.reports[w] =
          RunJobWorker(loop, endpoints, data, w, model_dir, w == 0 ? chief_progress : Trainer::ProgressFn());
    });
  }
  for (auto& t : threads) t.join();

  auto reader = ConnectJobWorker(loop, endpoints, 0, "");
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return result;
  std::vector<std::string> names;
  for (const VariableSpec& s : (*reader)->graph.ServerVariables()) {
    if (s.name != "cairn/chief_ready") names.push_back(s.name);
  }
  auto pulled = (*reader)->client->Pull(names);
  EXPECT_TRUE(pulled.ok()) << pulled.status();
  if (pulled.ok()) {
    for (auto& [name, t] : *pulled) result.values[name] = t.Clone();
  }
  result.replacement = servers[1]->stats();
  return result;
}

// (variable, part) -> the whole variable's bytes of that part, reassembled
// from its shards (scalar slots: the first shard's).
std::map<std::pair<std::string, int>, std::string> ReadVariables(const std::string& dir, int64_t step) {
  std::map<std::pair<std::string, int>, std::string> out;
  std::map<std::pair<std::string, int64_t>, int> where;
  const ShardContents shards = ReadShards(dir, step, &where);
  StatusOr<SnapshotManifest> m = ReadManifest(dir, step);
  if (!m.ok()) return out;
  for (const auto& [key, bytes] : shards) {
    const auto& [name, part, row_begin] = key;
    const ManifestVariable* mv = m->FindVariable(name);
    if (!mv) continue;
    std::string& whole = out[{name, part}];
    if (part > 0 && mv->scalar_slots.at(part - 1)) {
      if (whole.empty()) whole = bytes;
      continue;
    }
    int64_t rows = 0;
    for (const ManifestShard& s : m->shards) {
      if (s.variable == name && s.row_begin == row_begin) rows = s.row_end - s.row_begin;
    }
    const size_t row_bytes = rows == 0 ? bytes.size() : bytes.size() / rows;
    whole.resize(std::max<size_t>(whole.size(), static_cast<size_t>(std::max<int64_t>(1, mv->spec.rows())) * row_bytes));
    std::memcpy(whole.data() + row_begin * row_bytes, bytes.data(), bytes.size());
  }
  return out;
}

class SyncJobRecoveryTest : public RestoreOnStartTest {};

TEST_F(SyncJobRecoveryTest, AServerReplacedMidRunIsRecoveredFromAndTheJobEndsBitIdentical) {
  const JobResult a = RunSyncJob(Dir("uninterrupted"), /*restart_server=*/false);
  for (const auto& r : a.reports) ASSERT_OK(r);
  const JobResult b = RunSyncJob(Dir("restarted"), /*restart_server=*/true);
  ASSERT_TRUE(b.restarted);
  ASSERT_OK(b.restart_status);
  for (const auto& r : b.reports) ASSERT_OK(r);

  for (int w = 0; w < kJobWorkers; ++w) {
    SCOPED_TRACE("worker " + std::to_string(w));
    const WorkerReport& ra = *a.reports[w];
    const WorkerReport& rb = *b.reports[w];
    EXPECT_EQ(ra.recoveries, 0);
    EXPECT_GE(rb.recoveries, 1);
    EXPECT_GE(rb.steps_rolled_back, 1);
    EXPECT_EQ(ra.steps, kJobSteps);
    EXPECT_EQ(rb.steps, kJobSteps);
    EXPECT_EQ(ra.global_step, kJobSteps);
    EXPECT_EQ(rb.global_step, kJobSteps);
  }
  // The replacement restored snapshot 10 on start, and the chief's rollback
  // put the whole cluster back at it.
  EXPECT_EQ(b.replacement.restored_step, kRestoredStep);
  EXPECT_GE(b.replacement.restores, 2u);

  // The final weights, learning rate, normalization, positions and global step.
  ASSERT_FALSE(a.values.empty());
  ASSERT_EQ(a.values.size(), b.values.size());
  for (const auto& [name, value] : a.values) {
    ASSERT_TRUE(b.values.count(name)) << name;
    EXPECT_TRUE(value.BitEqual(b.values.at(name))) << name << " differs";
  }
  EXPECT_EQ(a.values.at("global_step").data<int64_t>()[0], kJobSteps);

  // The optimizer slots: the final snapshots (step kJobSteps) hold the same bytes.
  const auto sa = ReadVariables(Dir("uninterrupted"), kJobSteps);
  const auto sb = ReadVariables(Dir("restarted"), kJobSteps);
  ASSERT_FALSE(sa.empty());
  EXPECT_EQ(sa.size(), sb.size());
  int slots = 0;
  for (const auto& [key, bytes] : sa) {
    auto it = sb.find(key);
    ASSERT_TRUE(it != sb.end()) << key.first << " part " << key.second;
    EXPECT_TRUE(it->second == bytes) << key.first << " part " << key.second << " differs";
    slots += key.second > 0;
  }
  EXPECT_GT(slots, 0);
}

}  // namespace
}  // namespace cairn
