// Snapshots end to end: a Saver on a real Session, PsClient and servers on
// loopback, saving to and restoring from a model directory on disk.
//
// Restores go to a second, independent cluster (often of another size), and
// are checked bit for bit: the pulled values, and the optimizer slots, by
// saving the restored cluster again and comparing both snapshots' contents
// reassembled variable by variable, and by training one more identical step
// on both clusters.
#include "worker/saver.h"

#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_db.h"
#include "ps/local_cluster.h"
#include "worker/model.h"
#include "worker/ps_client.h"
#include "worker/session.h"
#include "tests/snapshot_compare.h"
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

// --- Models ------------------------------------------------------------------

using testing::BuildFn;

// The mlp of a 2-worker job (testing::Mlp).
const BuildFn BuildMlp = testing::Mlp(0.05, 2);

VariableOptions FloatVar(const std::string& name, Shape shape) {
  VariableOptions o;
  o.name = name;
  o.shape = std::move(shape);
  o.init.kind = InitKind::kUniform;
  o.init.seed = 17;
  return o;
}

// A small hand-built softmax regression, x [-1, 4] · `weight` [4, 3] + bias,
// with learning_rate and global_step, and `extras` (trainable, outside the
// loss) that a test adds or reshapes.
BuildFn Tiny(const std::string& weight = "w", std::vector<VariableOptions> extras = {}) {
  return [weight, extras](Graph* g) -> StatusOr<Model> {
    Model m;
    m.x = g->Placeholder("x", DType::kFloat32, {-1, 4});
    m.y = g->Placeholder("labels", DType::kInt64, {-1});
    VariableOptions w = FloatVar(weight, {4, 3});
    w.init.kind = InitKind::kGlorotUniform;
    w.init.seed = 3;
    m.weights = g->Variable(w);
    Output b = g->Variable(FloatVar("bias", {3}));
    VariableOptions lr;
    lr.name = "learning_rate";
    lr.trainable = false;
    lr.init.kind = InitKind::kConstant;
    lr.init.value = 0.05;
    m.learning_rate = g->Variable(lr);
    VariableOptions step;
    step.name = "global_step";
    step.dtype = DType::kInt64;
    step.trainable = false;
    m.global_step = g->Variable(step);
    for (const VariableOptions& e : extras) g->Variable(e);
    m.output = g->Add(g->MatMul(m.x, m.weights), b, "logits");
    m.loss = g->ReduceMean(g->SparseSoftmaxCrossEntropyWithLogits(m.output, m.y), "loss");
    MinimizeOptions mo;
    mo.learning_rate = m.learning_rate;
    mo.global_step = m.global_step;
    m.train_op = g->Minimize(m.loss, mo, "train");
    m.classifier = true;
    if (!g->status().ok()) return g->status();
    return m;
  };
}

SessionOptions Options(const std::string& optimizer, const std::string& consistency, int workers = 1) {
  SessionOptions o;
  o.optimizer.kind = optimizer;
  o.optimizer.learning_rate = 0.05;
  o.mode.consistency = *ParseConsistency(consistency);
  o.mode.num_workers = workers;
  o.mode.sync_timeout_ms = 20000;
  return o;
}

// The snapshot tests' default worker: the mlp with adam, async.
struct WorkerOptions : testing::WorkerOptions {
  WorkerOptions() {
    build = BuildMlp;
    session = Options("adam", "async");
  }
};
using testing::Worker;


// --- Reading snapshots back --------------------------------------------------

// A snapshot's contents, independent of the number of servers that wrote it:
// (variable, part) -> the part's bytes for the whole variable, reassembled
// from its shards (part 0 the values, 1 + i slot i; a scalar slot once, after
// checking every shard holds the same value).
using SnapshotContents = std::map<std::pair<std::string, int>, std::string>;

SnapshotContents ReadContents(const std::string& dir, int64_t step) {
  SnapshotContents out;
  testing::ForEachShardPart(dir, step, [&](const SnapshotManifest& m, const ManifestShard& ms,
                                           const ShardRecord& record, int p, const Tensor& part) {
    const ManifestVariable* mv = m.FindVariable(ms.variable);
    ASSERT_NE(mv, nullptr) << ms.variable;
    const std::string bytes(static_cast<const char*>(part.raw()), part.byte_size());
    std::string& whole = out[{ms.variable, p}];
    if (p > 0 && record.slot_defs[p - 1].scalar) {
      if (whole.empty()) whole = bytes;
      EXPECT_EQ(whole, bytes) << ms.variable << " scalar slot " << p << " differs between shards";
      return;
    }
    const int64_t rows = ms.row_end - ms.row_begin;
    const size_t row_bytes = rows == 0 ? 0 : bytes.size() / rows;
    whole.resize(static_cast<size_t>(mv->spec.rows()) * row_bytes);
    std::memcpy(whole.data() + ms.row_begin * row_bytes, bytes.data(), bytes.size());
  });
  return out;
}

void ExpectSameContents(const SnapshotContents& expected, const SnapshotContents& actual) {
  ASSERT_FALSE(expected.empty());
  std::set<std::pair<std::string, int>> keys_e, keys_a;
  for (const auto& [k, v] : expected) keys_e.insert(k);
  for (const auto& [k, v] : actual) keys_a.insert(k);
  EXPECT_EQ(keys_e, keys_a);
  for (const auto& [key, bytes] : expected) {
    auto it = actual.find(key);
    if (it == actual.end()) continue;
    EXPECT_TRUE(it->second == bytes) << key.first << " part " << key.second << " differs";
  }
}

void ExpectSameValues(const std::map<std::string, Tensor>& expected, const std::map<std::string, Tensor>& actual,
                      const std::vector<std::string>& names) {
  ASSERT_FALSE(names.empty());
  for (const std::string& name : names) {
    auto e = expected.find(name), a = actual.find(name);
    ASSERT_TRUE(e != expected.end() && a != actual.end()) << name;
    EXPECT_TRUE(e->second.BitEqual(a->second)) << name << " differs";
  }
}

std::vector<std::string> Names(const std::map<std::string, Tensor>& values) {
  std::vector<std::string> out;
  for (const auto& [name, t] : values) out.push_back(name);
  return out;
}

int64_t Int64Of(const Tensor& t) { return t.data<int64_t>()[0]; }

// Captures what the default logger writes while it lives. Install it only
// while no other thread logs (the sink list is not guarded).
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() {
    sink_->flush();
    return out_.str();
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

// Changes a database with RocksDB directly, as a bad disk would.
void Tamper(const std::string& path, const std::function<void(rocksdb::DB*)>& change) {
  rocksdb::DB* db = nullptr;
  rocksdb::Options options;
  ASSERT_TRUE(rocksdb::DB::Open(options, path, &db).ok()) << path;
  change(db);
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

// --- Fixture -----------------------------------------------------------------

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/snapshot_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<LocalCluster> StartCluster(int servers) {
    LocalClusterOptions o;
    o.servers = servers;
    o.model_dir = root_;  // every directory a test saves to lies beneath it
    auto c = LocalCluster::Start(loop_, WithTestAuth(o));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::unique_ptr<Worker> NewWorker(const LocalCluster& cluster, WorkerOptions o = {}) {
    auto w = std::make_unique<Worker>(loop_, cluster.endpoints(), std::move(o));
    EXPECT_TRUE(w->ready());
    return w;
  }

  std::string Dir(const std::string& name) const { return root_ + "/" + name; }

  // Declared first: outlives every cluster and worker a test makes.
  EventLoop loop_{2};
  std::string root_;
};

// Trains batches [first, first + steps).
void Train(Worker& w, int64_t first, int64_t steps) {
  for (int64_t b = first; b < first + steps; ++b) ASSERT_OK(w.Step(b));
}

// --- 1. Round trip -------------------------------------------------------------

TEST_F(SnapshotTest, ARestoredClusterHoldsTheSavedValuesAndSlotsBitForBit) {
  WorkerOptions wo;
  wo.session = Options("adam", "sync");
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  auto w = NewWorker(*a, wo);
  ASSERT_OK(w->SetNormalization());
  Train(*w, 0, 5);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(5));

  // What a default save holds.
  StatusOr<SnapshotManifest> m = ReadManifest(Dir("model"), 5);
  ASSERT_OK(m);
  EXPECT_EQ(m->step, 5);
  EXPECT_EQ(m->global_step, 5);
  EXPECT_EQ(m->num_servers, 2);
  for (const char* name : {"normalize/mean", "normalize/inv_std", "learning_rate", "global_step",
                           "cairn/worker_state/0", "cairn/worker_state/1", "dense_0/W", "output/b"}) {
    EXPECT_NE(m->FindVariable(name), nullptr) << name;
  }
  EXPECT_EQ(m->FindVariable("cairn/chief_ready"), nullptr);
  const ManifestVariable* w0 = m->FindVariable("dense_0/W");
  ASSERT_NE(w0, nullptr);
  EXPECT_EQ(w0->optimizer, "Adam");
  EXPECT_EQ(w0->slots, (std::vector<std::string>{"m", "v", "beta1_power", "beta2_power"}));
  ASSERT_EQ(m->workers.size(), 2u);
  EXPECT_EQ(m->workers[0].steps, 5);
  EXPECT_EQ(m->workers[0].seed, 42u);
  EXPECT_EQ(m->workers[1].steps, 0);

  auto b = StartCluster(2);
  ASSERT_TRUE(b);
  auto r = NewWorker(*b, wo);
  auto restorer = r->NewSaver(Dir("model"));
  ASSERT_OK(restorer);
  StatusOr<RestoreResult> restored = (*restorer)->Restore();
  ASSERT_OK(restored);
  EXPECT_EQ(restored->step, 5);
  EXPECT_EQ(restored->global_step, 5);
  ASSERT_EQ(restored->workers.size(), 2u);
  EXPECT_EQ(restored->workers[0].steps, 5);
  EXPECT_EQ(r->client().next_step(), 5);
  r->ResumeAfter(restored->workers[0].steps);

  const std::vector<std::string>& saved = (*saver)->saved_variables();
  ExpectSameValues(w->Values(), r->Values(), saved);

  // The slots: a snapshot of the restored cluster holds the same bytes.
  auto resaver = r->NewSaver(Dir("again"));
  ASSERT_OK(resaver);
  ASSERT_OK((*resaver)->Save(5));
  ExpectSameContents(ReadContents(Dir("model"), 5), ReadContents(Dir("again"), 5));

  // And the next (sync) step lands identically on both.
  ASSERT_OK(w->Step(5));
  ASSERT_OK(r->Step(5));
  const auto after = w->Values();
  ExpectSameValues(after, r->Values(), saved);
  EXPECT_EQ(Int64Of(after.at("global_step")), 6);
}

// --- 2. Another number of servers ------------------------------------------------

TEST_F(SnapshotTest, ASnapshotOfTwoServersRestoresOntoOneTwoOrThree) {
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  auto w = NewWorker(*a);
  ASSERT_OK(w->SetNormalization());
  Train(*w, 0, 4);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(4));
  const SnapshotContents original = ReadContents(Dir("model"), 4);
  const auto saved_values = w->Values();
  ASSERT_OK(w->Step(4));
  const auto next_values = w->Values();

  // The weights are split, so restoring onto another count moves rows.
  StatusOr<SnapshotManifest> m = ReadManifest(Dir("model"), 4);
  ASSERT_OK(m);
  std::set<int> dense_servers;
  for (const ManifestShard& s : m->shards) {
    if (s.variable == "dense_0/W") dense_servers.insert(s.server);
  }
  EXPECT_EQ(dense_servers, (std::set<int>{0, 1}));

  const std::vector<std::string>& saved = (*saver)->saved_variables();
  for (int servers : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(servers) + " server(s)");
    auto c = StartCluster(servers);
    ASSERT_TRUE(c);
    auto r = NewWorker(*c);
    auto from = r->NewSaver(Dir("model"));
    ASSERT_OK(from);
    StatusOr<RestoreResult> restored = (*from)->Restore();
    ASSERT_OK(restored);
    ExpectSameValues(saved_values, r->Values(), saved);
    ASSERT_EQ(restored->workers.size(), 2u);
    r->ResumeAfter(restored->workers[0].steps);

    auto resaver = r->NewSaver(Dir("onto-" + std::to_string(servers)));
    ASSERT_OK(resaver);
    ASSERT_OK((*resaver)->Save(4));
    StatusOr<SnapshotManifest> again = ReadManifest(Dir("onto-" + std::to_string(servers)), 4);
    ASSERT_OK(again);
    EXPECT_EQ(again->num_servers, servers);
    EXPECT_EQ(std::count_if(again->shards.begin(), again->shards.end(),
                            [](const ManifestShard& s) { return s.variable == "dense_0/W"; }),
              servers);
    ExpectSameContents(original, ReadContents(Dir("onto-" + std::to_string(servers)), 4));

    ASSERT_OK(r->Step(4));
    ExpectSameValues(next_values, r->Values(), saved);
  }
}

// --- 3. A narrowed var_list ------------------------------------------------------

TEST_F(SnapshotTest, ANarrowedVarListSavesOnlyItAndSaysWhatItLeavesOut) {
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  auto w = NewWorker(*a);
  Train(*w, 0, 2);

  SaverOptions so;
  so.var_list = {"dense_0/W"};
  std::string log;
  StatusOr<std::unique_ptr<Saver>> saver = InvalidArgument("not created");
  {
    LogCapture capture;  // nothing else logs: the servers are idle
    saver = w->NewSaver(Dir("model"), so);
    log = capture.text();
  }
  ASSERT_OK(saver);
  EXPECT_EQ((*saver)->saved_variables(), (std::vector<std::string>{"dense_0/W"}));
  for (const char* left_out : {"global_step", "learning_rate", "normalize/mean", "cairn/worker_state/0", "output/W",
                               "dense_0/b"}) {
    EXPECT_TRUE(Contains(log, left_out)) << "the warning does not name " << left_out << ":\n" << log;
  }
  EXPECT_TRUE(Contains(log, "warn")) << log;
  EXPECT_TRUE(Contains(log, "saves 1 of 10 variables")) << log;  // 11 less cairn/chief_ready
  EXPECT_FALSE(Contains(log, "chief_ready")) << log;

  ASSERT_OK((*saver)->Save(2));
  StatusOr<SnapshotManifest> m = ReadManifest(Dir("model"), 2);
  ASSERT_OK(m);
  ASSERT_EQ(m->variables.size(), 1u);
  EXPECT_EQ(m->variables[0].spec.name, "dense_0/W");
  EXPECT_EQ(m->global_step, 2);  // not saved: the step stands in
  EXPECT_TRUE(m->workers.empty());
  std::set<std::string> in_databases;
  for (int s = 0; s < 2; ++s) {
    auto db = OpenSnapshotDb(ServerDbPath(Dir("model"), 2, s));
    ASSERT_OK(db);
    for (const ShardRecord& r : (*db)->shards()) in_databases.insert(r.info.spec.name);
  }
  EXPECT_EQ(in_databases, (std::set<std::string>{"dense_0/W"}));

  // A variable that only one server holds: the other writes an empty
  // database, and a warm start onto three servers takes it.
  so.var_list = {"output/b"};
  auto narrow = w->NewSaver(Dir("narrow"), so);
  ASSERT_OK(narrow);
  ASSERT_OK((*narrow)->Save(2));
  auto c = StartCluster(3);
  ASSERT_TRUE(c);
  auto r = NewWorker(*c);
  const auto initial = r->Values();
  auto from = r->NewSaver(Dir("narrow"));
  ASSERT_OK(from);
  RestoreOptions warm;
  warm.partial = true;
  warm.var_list = {"output/b"};
  ASSERT_OK((*from)->Restore(warm));
  const auto now = r->Values();
  EXPECT_TRUE(now.at("output/b").BitEqual(w->Values({"output/b"}).at("output/b")));
  EXPECT_TRUE(now.at("dense_0/W").BitEqual(initial.at("dense_0/W")));

  // A name that is no global variable is refused up front.
  so.var_list = {"dense_0/W", "no/such"};
  auto bad = w->NewSaver(Dir("model"), so);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kNotFound) << bad.status();
  EXPECT_TRUE(Contains(bad.status().message(), "no/such")) << bad.status();
}

// The count in the warning leaves out cairn/chief_ready only when the graph
// has one: this graph has 4 global variables and no chief_ready.
TEST_F(SnapshotTest, TheNarrowedSaveWarningCountsEveryVariable) {
  auto a = StartCluster(1);
  ASSERT_TRUE(a);
  WorkerOptions job;
  job.build = Tiny();
  auto w = NewWorker(*a, job);
  SaverOptions so;
  so.var_list = {"w"};
  std::string log;
  {
    LogCapture capture;
    ASSERT_OK(w->NewSaver(Dir("model"), so));
    log = capture.text();
  }
  EXPECT_TRUE(Contains(log, "saves 1 of 4 variables")) << log;
}

// Worker positions are read back from the databases; a job whose split
// threshold is small enough to split the int64[4] state variables must still
// record them (Saver::ReadWorkerStates gathers every slice).
TEST_F(SnapshotTest, WorkerStatesSplitAcrossServersAreStillRecorded) {
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  WorkerOptions job;
  job.split_threshold_bytes = 0;  // every variable with >= 2 rows is split
  auto w = NewWorker(*a, job);
  StatusOr<std::vector<ShardSlice>> slices = w->client().placement().SlicesOf(WorkerStateName(0));
  ASSERT_OK(slices);
  ASSERT_EQ(slices->size(), 2u);  // the premise: the state is split
  Train(*w, 0, 3);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(3));
  StatusOr<SnapshotManifest> m = ReadManifest(Dir("model"), 3);
  ASSERT_OK(m);
  ASSERT_EQ(m->workers.size(), 2u);
  EXPECT_EQ(m->workers[0].steps, 3);
  EXPECT_EQ(m->workers[0].step_in_epoch, 3);
  EXPECT_EQ(m->workers[0].seed, 42u);
}

// --- 4. Validation -----------------------------------------------------------------

TEST_F(SnapshotTest, RestoreReportsEveryMismatchAtOnce) {
  auto a = StartCluster(1);
  ASSERT_TRUE(a);
  WorkerOptions saved_job;
  saved_job.build = Tiny("w", {FloatVar("reshaped", {6}), FloatVar("dropped", {2})});
  auto w = NewWorker(*a, saved_job);
  Train(*w, 0, 2);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(2));

  auto b = StartCluster(1);
  ASSERT_TRUE(b);
  WorkerOptions other;
  other.build = Tiny("w", {FloatVar("reshaped", {7}), FloatVar("added", {2})});
  auto r = NewWorker(*b, other);
  const auto before = r->Values();
  auto restorer = r->NewSaver(Dir("model"));
  ASSERT_OK(restorer);
  StatusOr<RestoreResult> restored = (*restorer)->Restore();
  ASSERT_FALSE(restored.ok());
  const Status& s = restored.status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Contains(s.message(), "3 problems")) << s;
  EXPECT_TRUE(Contains(s.message(), "missing: 'added'")) << s;
  EXPECT_TRUE(Contains(s.message(), "unexpected: 'dropped'")) << s;
  EXPECT_TRUE(Contains(s.message(), "'reshaped': float32[7] in this model vs float32[6] in the snapshot")) << s;
  ExpectSameValues(before, r->Values(), Names(before));  // nothing restored
}

TEST_F(SnapshotTest, AnotherOptimizerIsReportedAndRestoresWithoutSlots) {
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  WorkerOptions adam;
  adam.build = Tiny();
  auto w = NewWorker(*a, adam);
  Train(*w, 0, 3);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(3));
  const auto saved_values = w->Values();

  auto b = StartCluster(2);
  ASSERT_TRUE(b);
  WorkerOptions momentum = adam;
  momentum.session = Options("momentum", "async");
  auto r = NewWorker(*b, momentum);
  const auto before = r->Values();
  auto restorer = r->NewSaver(Dir("model"));
  ASSERT_OK(restorer);
  StatusOr<RestoreResult> refused = (*restorer)->Restore();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status();
  for (const char* mention : {"'w'", "'bias'", "optimizer slots", "Momentum", "Adam"}) {
    EXPECT_TRUE(Contains(refused.status().message(), mention)) << refused.status() << " lacks " << mention;
  }
  ExpectSameValues(before, r->Values(), Names(before));

  RestoreOptions no_slots;
  no_slots.slots = false;
  ASSERT_OK((*restorer)->Restore(no_slots));
  ExpectSameValues(saved_values, r->Values(), (*saver)->saved_variables());
  // Momentum starts afresh: its slot is still all zeros.
  auto resaver = r->NewSaver(Dir("again"));
  ASSERT_OK(resaver);
  ASSERT_OK((*resaver)->Save(3));
  const SnapshotContents again = ReadContents(Dir("again"), 3);
  auto slot = again.find({"w", 1});
  ASSERT_NE(slot, again.end());
  EXPECT_EQ(slot->second, std::string(4 * 3 * sizeof(float), '\0'));
}

// --- 5. Warm start -------------------------------------------------------------------

TEST_F(SnapshotTest, APartialRestoreTakesARenamedVariableAndLeavesTheRest) {
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  WorkerOptions old_job;
  old_job.build = Tiny("old_name");
  auto w = NewWorker(*a, old_job);
  Train(*w, 0, 3);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(3));
  const auto saved_values = w->Values();

  auto b = StartCluster(2);
  ASSERT_TRUE(b);
  WorkerOptions new_job;
  new_job.build = Tiny("new_name");
  auto r = NewWorker(*b, new_job);
  const auto initial = r->Values();
  ASSERT_FALSE(initial.at("new_name").BitEqual(saved_values.at("old_name")));
  auto restorer = r->NewSaver(Dir("model"));
  ASSERT_OK(restorer);

  // Not partial: the renamed variable is both missing and unexpected.
  StatusOr<RestoreResult> whole = (*restorer)->Restore();
  ASSERT_FALSE(whole.ok());
  EXPECT_TRUE(Contains(whole.status().message(), "missing: 'new_name'")) << whole.status();
  EXPECT_TRUE(Contains(whole.status().message(), "unexpected: 'old_name'")) << whole.status();

  RestoreOptions warm;
  warm.partial = true;
  warm.name_map = {{"new_name", "old_name"}};
  StatusOr<RestoreResult> restored = (*restorer)->Restore(warm);
  ASSERT_OK(restored);
  EXPECT_EQ(restored->restored, (std::vector<std::string>{"new_name"}));
  const auto after = r->Values();
  EXPECT_TRUE(after.at("new_name").BitEqual(saved_values.at("old_name")));
  for (const char* kept : {"bias", "global_step", "learning_rate"}) {
    EXPECT_TRUE(after.at(kept).BitEqual(initial.at(kept))) << kept << " changed";
  }
  EXPECT_EQ(Int64Of(after.at("global_step")), 0);

  // A partial restore of a name the snapshot lacks is refused, naming it.
  RestoreOptions absent;
  absent.partial = true;
  absent.var_list = {"bias"};
  absent.name_map = {{"new_name", "no_such"}};
  StatusOr<RestoreResult> refused = (*restorer)->Restore(absent);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_TRUE(Contains(refused.status().message(), "'no_such'")) << refused.status();
  EXPECT_TRUE(r->Values().at("bias").BitEqual(initial.at("bias")));
}

// --- 6. Collections -------------------------------------------------------------------

TEST_F(SnapshotTest, CollectionsAreRebuiltOnlyWhenAsked) {
  auto a = StartCluster(1);
  ASSERT_TRUE(a);
  WorkerOptions job;
  job.build = Tiny();
  auto w = NewWorker(*a, job);
  w->session().AddToCollection("my_weights", w->model().weights);
  Train(*w, 0, 1);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(1));
  StatusOr<SnapshotManifest> m = ReadManifest(Dir("model"), 1);
  ASSERT_OK(m);
  ASSERT_TRUE(m->collections.count("my_weights"));
  EXPECT_EQ(m->collections.at("my_weights"), (std::vector<std::string>{"w"}));

  auto b = StartCluster(1);
  ASSERT_TRUE(b);
  auto plain = NewWorker(*b, job);
  auto restorer = plain->NewSaver(Dir("model"));
  ASSERT_OK(restorer);
  ASSERT_OK((*restorer)->Restore());
  EXPECT_TRUE(plain->session().GetCollection("my_weights").empty());

  auto rebuilt = NewWorker(*b, job);
  auto rebuilder = rebuilt->NewSaver(Dir("model"));
  ASSERT_OK(rebuilder);
  RestoreOptions ro;
  ro.rebuild_collections = true;
  ASSERT_OK(rebuilt->session().Restore(**rebuilder, ro));
  EXPECT_EQ(rebuilt->session().GetCollection("my_weights"), (std::vector<std::string>{"w"}));
  EXPECT_EQ(rebuilt->session().GetCollection(collections::kTrainableVariables),
            w->session().GetCollection(collections::kTrainableVariables));
}

// --- 7. Corruption -------------------------------------------------------------------

class SnapshotCorruptionTest : public SnapshotTest {
 protected:
  // A 2-server snapshot of step 3 in Dir("model"), and a second 2-server
  // cluster, not restored, whose values are `before_`.
  void SetUp() override {
    SnapshotTest::SetUp();
    source_cluster_ = StartCluster(2);
    ASSERT_TRUE(source_cluster_);
    source_ = NewWorker(*source_cluster_);
    ASSERT_OK(source_->SetNormalization());
    Train(*source_, 0, 3);
    auto saver = source_->NewSaver(Dir("model"));
    ASSERT_OK(saver);
    ASSERT_OK((*saver)->Save(3));
    target_cluster_ = StartCluster(2);
    ASSERT_TRUE(target_cluster_);
    target_ = NewWorker(*target_cluster_);
    before_ = target_->Values();
  }

  // A copy of the snapshot to damage.
  std::string Copy(const std::string& name) {
    const std::string dir = Dir(name);
    fs::copy(Dir("model"), dir, fs::copy_options::recursive);
    return dir;
  }

  // The server whose database holds `variable` (a variable that is not split).
  int ServerOf(const std::string& dir, const std::string& variable) {
    StatusOr<SnapshotManifest> m = ReadManifest(dir, 3);
    EXPECT_TRUE(m.ok()) << m.status();
    for (const ManifestShard& s : m->shards) {
      if (s.variable == variable) return s.server;
    }
    ADD_FAILURE() << variable << " is not in the snapshot";
    return 0;
  }

  // Flips a byte in the first chunk of `variable`'s values in `dir`.
  void FlipFirstChunk(const std::string& dir, const std::string& variable) {
    const std::string key = "data/" + variable + "/0000/00000000";
    Tamper(ServerDbPath(dir, 3, ServerOf(dir, variable)), [&](rocksdb::DB* db) {
      std::string value;
      ASSERT_TRUE(db->Get({}, key, &value).ok()) << key;
      value[0] ^= 0x10;
      ASSERT_TRUE(db->Put({}, key, value).ok());
    });
  }

  Status RestoreFrom(const std::string& dir) {
    auto saver = target_->NewSaver(dir);
    if (!saver.ok()) return saver.status();
    return (*saver)->Restore().status();
  }

  void ExpectNothingRestored() {
    const auto now = target_->Values();
    for (const auto& [name, value] : before_) {
      EXPECT_TRUE(value.BitEqual(now.at(name))) << name << " was restored by a restore that failed";
    }
  }

  std::unique_ptr<LocalCluster> source_cluster_, target_cluster_;
  std::unique_ptr<Worker> source_, target_;
  std::map<std::string, Tensor> before_;
};

// A restore stages on every server before any applies: when one server's
// part fails to read, no server changes anything.
TEST_F(SnapshotCorruptionTest, AFailedRestoreLeavesEveryServerAsItWas) {
  const std::string dir = Copy("flipped");
  FlipFirstChunk(dir, "output/b");
  ASSERT_FALSE(RestoreFrom(dir).ok());
  ExpectNothingRestored();
}

// The target's shards hold only their initial values, so the servers read
// into them in place: after a failure they hold the initial values again.
// Here the normalization statistics have been assigned (so they are staged,
// not read in place) and one of them is damaged: the shards read in place
// before it, on its server and on the other, go back to their initial values.
TEST_F(SnapshotCorruptionTest, AFailedRestoreUndoesTheShardsItReadInPlace) {
  ASSERT_OK(target_->SetNormalization());
  before_ = target_->Values();
  const std::string dir = Copy("flipped");
  FlipFirstChunk(dir, "normalize/mean");
  const Status s = RestoreFrom(dir);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
  EXPECT_TRUE(Contains(s.message(), "normalize/mean")) << s;
  ExpectNothingRestored();
}

// A trained cluster (a rollback, as a sync job's recovery does) is staged
// whole: a failure replaces nothing.
TEST_F(SnapshotCorruptionTest, AFailedRollbackOfATrainedClusterChangesNothing) {
  Train(*target_, 0, 2);
  before_ = target_->Values();
  const std::string dir = Copy("flipped");
  FlipFirstChunk(dir, "output/b");
  EXPECT_EQ(RestoreFrom(dir).code(), StatusCode::kDataLoss);
  ExpectNothingRestored();
  // And the same rollback from the intact snapshot applies.
  ASSERT_OK(RestoreFrom(Dir("model")));
  ExpectSameValues(source_->Values(), target_->Values(), Names(source_->Values()));
}

// The phases of a restore, as Saver::Restore sends them to every server.
SnapshotRestoreRequest Phase(RestorePhase phase, const std::string& dir, const std::vector<std::string>& names) {
  SnapshotRestoreRequest req;
  req.phase = phase;
  req.model_dir = dir;
  req.step = 3;
  req.variables = names;
  req.saved_names = names;
  return req;
}

// Between stage and apply, the shards a stage read in place take no reads,
// updates or snapshots, so nobody sees or changes a restore that may still be
// discarded; a discard gives back the initial values, and a second stage
// replaces one that was never applied.
TEST_F(SnapshotCorruptionTest, AStagedRestoreIsFencedUntilAppliedOrDiscarded) {
  auto saver = target_->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  const std::vector<std::string> names = (*saver)->saved_variables();
  PsClient& client = target_->client();
  ASSERT_OK(client.SnapshotRestore(Phase(RestorePhase::kStage, Dir("model"), names)));
  StatusOr<std::map<std::string, Tensor>> pulled = client.Pull({"dense_0/W"});
  EXPECT_EQ(pulled.status().code(), StatusCode::kFailedPrecondition) << pulled.status();
  EXPECT_TRUE(Contains(pulled.status().message(), "is being restored")) << pulled.status();
  auto other = target_->NewSaver(Dir("other"));
  ASSERT_OK(other);
  const Status snapshot = (*other)->Save(9).status();
  EXPECT_EQ(snapshot.code(), StatusCode::kFailedPrecondition) << snapshot;
  EXPECT_TRUE(Contains(snapshot.message(), "staged")) << snapshot;

  ASSERT_OK(client.SnapshotRestore(Phase(RestorePhase::kDiscard, Dir("model"), {})));
  ExpectNothingRestored();

  ASSERT_OK(client.SnapshotRestore(Phase(RestorePhase::kStage, Dir("model"), names)));
  ASSERT_OK(client.SnapshotRestore(Phase(RestorePhase::kStage, Dir("model"), names)));  // replaces the first
  ASSERT_OK(client.SnapshotRestore(Phase(RestorePhase::kApply, Dir("model"), {})));
  ExpectSameValues(source_->Values(), target_->Values(), names);
  ASSERT_OK(client.SnapshotRestore(Phase(RestorePhase::kDiscard, Dir("model"), {})));  // nothing staged: nothing to do
  ExpectSameValues(source_->Values(), target_->Values(), names);
}

TEST_F(SnapshotCorruptionTest, AFlippedByteIsDataLossNamingTheVariable) {
  const std::string dir = Copy("flipped");
  FlipFirstChunk(dir, "output/b");
  const Status s = RestoreFrom(dir);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
  EXPECT_TRUE(Contains(s.message(), "output/b")) << s;
  // The server that holds output/b replaced nothing.
  const auto now = target_->Values();
  EXPECT_TRUE(now.at("output/b").BitEqual(before_.at("output/b")));
}

TEST_F(SnapshotCorruptionTest, AMissingServerDatabaseIsAnErrorNamingItsPath) {
  const std::string dir = Copy("missing");
  fs::remove_all(ServerDbPath(dir, 3, 1));
  const Status s = RestoreFrom(dir);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s;
  EXPECT_TRUE(Contains(s.message(), ServerDbPath(dir, 3, 1))) << s;
  // Variables held only by old server 1 (by the new placement, on server 1 too) stay.
  const auto now = target_->Values();
  StatusOr<SnapshotManifest> m = ReadManifest(dir, 3);
  ASSERT_OK(m);
  for (const ManifestShard& ms : m->shards) {
    if (ms.server == 1 && ms.row_begin == 0 && ms.row_end == before_.at(ms.variable).rows()) {
      EXPECT_TRUE(now.at(ms.variable).BitEqual(before_.at(ms.variable))) << ms.variable;
    }
  }
}

TEST_F(SnapshotCorruptionTest, ATruncatedManifestIsDataLossNamingTheFile) {
  const std::string dir = Copy("truncated");
  const std::string manifest = ManifestPath(dir, 3);
  fs::resize_file(manifest, fs::file_size(manifest) / 2);
  const Status s = RestoreFrom(dir);
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
  EXPECT_TRUE(Contains(s.message(), manifest)) << s;
  ExpectNothingRestored();
}

TEST_F(SnapshotCorruptionTest, AForeignDirectoryIsRefusedForRestoreAndSave) {
  const std::string dir = Dir("foreign");
  fs::create_directories(dir);
  { std::ofstream(dir + "/notes.txt") << "not a model"; }
  const Status s = RestoreFrom(dir);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
  ExpectNothingRestored();

  auto saver = target_->NewSaver(dir);
  ASSERT_OK(saver);
  StatusOr<SnapshotStats> saved = (*saver)->Save(1);
  ASSERT_FALSE(saved.ok());
  EXPECT_EQ(saved.status().code(), StatusCode::kFailedPrecondition) << saved.status();
  EXPECT_FALSE((*saver)->pending());
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(dir)) entries.push_back(e.path().filename().string());
  EXPECT_EQ(entries, (std::vector<std::string>{"notes.txt"}));
}

// --- 8. Retention ------------------------------------------------------------------

std::vector<std::pair<int64_t, bool>> Listing(const std::string& dir) {
  StatusOr<std::vector<SnapshotListing>> l = ListSnapshots(dir);
  EXPECT_TRUE(l.ok()) << l.status();
  std::vector<std::pair<int64_t, bool>> out;
  if (l.ok()) {
    for (const SnapshotListing& s : *l) out.emplace_back(s.step, s.committed);
  }
  return out;
}

TEST_F(SnapshotTest, TheSaverKeepsTheNewestAndClearsOlderUncommittedSnapshots) {
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  WorkerOptions job;
  job.build = Tiny();
  auto w = NewWorker(*a, job);
  SaverOptions so;
  so.retention.max_to_keep = 2;
  auto saver = w->NewSaver(Dir("model"), so);
  ASSERT_OK(saver);
  for (int64_t step = 1; step <= 5; ++step) {
    ASSERT_OK(w->Step(step));
    ASSERT_OK((*saver)->Save(step));
  }
  using L = std::vector<std::pair<int64_t, bool>>;
  EXPECT_EQ(Listing(Dir("model")), (L{{4, true}, {5, true}}));

  // A snapshot written but never committed (the chief died before its manifest).
  ASSERT_OK(w->client().SnapshotPrepare({6, Dir("model"), (*saver)->saved_variables(), {}}));
  ASSERT_OK(w->client().SnapshotWait(6));
  EXPECT_EQ(Listing(Dir("model")), (L{{4, true}, {5, true}, {6, false}}));
  ASSERT_OK((*saver)->Save(7));
  EXPECT_EQ(Listing(Dir("model")), (L{{5, true}, {7, true}}));

  // One newer than the newest commit may be in progress: it stays.
  ASSERT_OK(w->client().SnapshotPrepare({9, Dir("model"), (*saver)->saved_variables(), {}}));
  ASSERT_OK(w->client().SnapshotWait(9));
  ASSERT_OK((*saver)->Save(8));
  EXPECT_EQ(Listing(Dir("model")), (L{{7, true}, {8, true}, {9, false}}));
  StatusOr<int64_t> latest = LatestCommittedStep(Dir("model"));
  ASSERT_OK(latest);
  EXPECT_EQ(*latest, 8);
}

// --- 9. Consistency under sync training ------------------------------------------------

TEST_F(SnapshotTest, SyncSnapshotsBetweenTheChiefsStepsAreOneConsistentStep) {
  auto a = StartCluster(2);
  ASSERT_TRUE(a);
  WorkerOptions chief_options, other_options;
  chief_options.session = other_options.session = Options("adam", "sync", 2);
  other_options.id = 1;
  auto chief = NewWorker(*a, chief_options);
  auto other = NewWorker(*a, other_options);
  SaverOptions so;
  so.retention.max_to_keep = 0;  // keep every snapshot to check it
  auto saver = chief->NewSaver(Dir("model"), so);
  ASSERT_OK(saver);

  constexpr int64_t kSteps = 8;
  std::thread worker1([&] {
    for (int64_t s = 0; s < kSteps; ++s) {
      Status st = other->Step(1000 + s);
      ASSERT_TRUE(st.ok()) << st;
    }
  });
  std::vector<int64_t> saved_steps;
  for (int64_t s = 0; s < kSteps; ++s) {
    Status st = chief->Step(s);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) break;
    if (s % 2 == 1) {
      StatusOr<SnapshotStats> saved = (*saver)->Save(s + 1);
      EXPECT_TRUE(saved.ok()) << saved.status();
      if (saved.ok()) saved_steps.push_back(s + 1);
    }
  }
  worker1.join();
  ASSERT_EQ(saved_steps, (std::vector<int64_t>{2, 4, 6, 8}));

  for (int64_t step : saved_steps) {
    SCOPED_TRACE("snapshot " + std::to_string(step));
    StatusOr<SnapshotManifest> m = ReadManifest(Dir("model"), step);
    ASSERT_OK(m);
    EXPECT_EQ(m->step, step);
    EXPECT_EQ(m->global_step, step);
    ASSERT_EQ(m->workers.size(), 2u);
    EXPECT_EQ(m->workers[0].steps, step);
    EXPECT_EQ(m->workers[1].steps, step);
    for (int s = 0; s < 2; ++s) {
      auto db = OpenSnapshotDb(ServerDbPath(Dir("model"), step, s));
      ASSERT_OK(db);
      EXPECT_EQ((*db)->step(), step);
      for (const ShardRecord& r : (*db)->shards()) EXPECT_EQ(r.step, step) << r.info.spec.name;
      if ((*db)->Find("global_step")) {
        StatusOr<Tensor> gs = (*db)->ReadPart("global_step", 0);
        ASSERT_OK(gs);
        EXPECT_EQ(Int64Of(*gs), step);
      }
    }
  }
}

}  // namespace
}  // namespace cairn
