// Sparse tables in cluster snapshots, end to end: a Saver on a real Session,
// PsClient and servers on 127.0.0.1, RocksDB databases on disk.
//
// Rows are trained through PsClient (PushBatch::sparse_gradients), saved,
// perturbed and restored, and compared bit for bit: the pulled values of
// every id touched, and the servers' rows with their optimizer slots, read
// back by saving the restored cluster again (each server writes exactly what
// SparseTable::Export gives).
#include "worker/saver.h"

#include <stdlib.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_db.h"
#include "common/snapshot/snapshot_reader.h"
#include "ps/local_cluster.h"
#include "ps/server.h"
#include "worker/session.h"
#include "tests/status_matchers.h"
#include "tests/test_worker.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using testing::Worker;

const std::vector<std::string> kTables = {"emb/item", "emb/user"};

// The 1-worker mlp with two sparse tables beside it (outside its loss: the
// test pushes their rows itself).
StatusOr<Model> BuildWithTables(Graph* g) {
  ASSIGN_OR_RETURN(Model m, testing::Mlp(0.05, 1)(g));
  SparseTableOptions user;
  user.name = "emb/user";
  user.dim = 4;
  user.init.kind = InitKind::kUniform;
  user.init.seed = 5;
  g->SparseTable(user);
  SparseTableOptions item;
  item.name = "emb/item";
  item.dim = 3;
  item.init.kind = InitKind::kNormal;
  item.init.stddev = 0.1;
  item.init.seed = 9;
  g->SparseTable(item);
  if (!g->status().ok()) return g->status();
  return m;
}

testing::WorkerOptions Options(const std::string& optimizer) {
  testing::WorkerOptions o;
  o.build = BuildWithTables;
  o.session.optimizer.kind = optimizer;
  o.session.optimizer.learning_rate = 0.05;
  return o;
}

int32_t DimOf(const std::string& table) { return table == "emb/user" ? 4 : 3; }

Tensor Ids(const std::vector<int64_t>& ids) {
  Tensor t = Tensor::Uninitialized(DType::kInt64, {static_cast<int64_t>(ids.size())});
  std::copy(ids.begin(), ids.end(), t.data<int64_t>());
  return t;
}

// Round `round`'s ids of `table`: a fixed function of both, drawn from a
// pool with negative, sequential and huge ids.
std::vector<int64_t> RoundIds(const std::string& table, int round) {
  std::set<int64_t> ids;
  for (int i = 0; i < 12; ++i) {
    const int64_t k = (round * 7 + i * 5 + static_cast<int64_t>(table.size())) % 40;
    ids.insert(k % 3 == 0 ? -k - 1 : k % 3 == 1 ? k : (k << 40) + 3);
  }
  return std::vector<int64_t>(ids.begin(), ids.end());
}

// Pushes one round of gradients to both tables.
Status TrainSparse(Worker& w, int round, std::set<int64_t>* touched = nullptr) {
  PushBatch batch;
  for (const std::string& table : kTables) {
    const std::vector<int64_t> ids = RoundIds(table, round);
    const int32_t dim = DimOf(table);
    std::vector<float> grad(ids.size() * dim);
    for (size_t i = 0; i < grad.size(); ++i) grad[i] = 0.125f * static_cast<float>((i * 3 + round) % 9) - 0.5f;
    batch.sparse_gradients[table] =
        SparseRowsUpdate{Ids(ids), Tensor::FromVector({static_cast<int64_t>(ids.size()), dim}, grad)};
    if (touched) touched->insert(ids.begin(), ids.end());
  }
  return w.client().Push(batch);
}

// The pulled rows of `ids` in every table.
std::map<std::string, std::vector<float>> Pulled(Worker& w, const std::set<int64_t>& ids) {
  std::map<std::string, Tensor> request;
  for (const std::string& table : kTables) request[table] = Ids(std::vector<int64_t>(ids.begin(), ids.end()));
  auto pulled = w.client().SparsePull(request);
  EXPECT_TRUE(pulled.ok()) << pulled.status();
  std::map<std::string, std::vector<float>> out;
  if (!pulled.ok()) return out;
  for (const auto& [table, t] : *pulled) out[table].assign(t.data<float>(), t.data<float>() + t.num_elements());
  return out;
}

// Every row of `table` in snapshot `step` of `dir`, gathered across servers.
SparseCopy Saved(const std::string& dir, int64_t step, const std::string& table) {
  auto reader = SnapshotReader::Open(dir, step);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return {};
  auto rows = (*reader)->ReadSparse(table);
  EXPECT_TRUE(rows.ok()) << rows.status();
  return rows.ok() ? std::move(*rows) : SparseCopy{};
}

void ExpectSameRows(const SparseRows& expected, const SparseRows& actual, const std::string& what) {
  EXPECT_EQ(expected.dim, actual.dim) << what;
  EXPECT_EQ(expected.ids, actual.ids) << what;
  EXPECT_EQ(0, std::memcmp(expected.values.data(), actual.values.data(),
                           std::min(expected.values.size(), actual.values.size()) * sizeof(float)))
      << what << ": values differ";
  EXPECT_EQ(expected.values.size(), actual.values.size()) << what;
  ASSERT_EQ(expected.slots.size(), actual.slots.size()) << what;
  for (size_t k = 0; k < expected.slots.size(); ++k) {
    ASSERT_EQ(expected.slots[k].size(), actual.slots[k].size()) << what << " slot " << k;
    EXPECT_EQ(0, std::memcmp(expected.slots[k].data(), actual.slots[k].data(), expected.slots[k].size() * sizeof(float)))
        << what << ": slot " << k << " differs";
  }
}

class SparseSnapshotTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/sparse_snapshot_test.XXXXXX";
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
  std::unique_ptr<Worker> NewWorker(const LocalCluster& cluster) {
    auto w = std::make_unique<Worker>(loop_, cluster.endpoints(), Options(GetParam()));
    EXPECT_TRUE(w->ready());
    return w;
  }
  std::string Dir(const std::string& name) const { return root_ + "/" + name; }

  // A 2-server cluster trained a little (dense steps and sparse rounds) and
  // saved as step 10 in Dir("model"); `touched_` holds every id pushed,
  // `saved_` the pulled rows at the snapshot.
  void TrainAndSave() {
    source_cluster_ = StartCluster(2);
    ASSERT_TRUE(source_cluster_);
    source_ = NewWorker(*source_cluster_);
    for (int round = 0; round < 4; ++round) {
      ASSERT_OK(source_->Step(round));
      ASSERT_OK(TrainSparse(*source_, round, &touched_));
    }
    auto saver = source_->NewSaver(Dir("model"));
    ASSERT_OK(saver);
    ASSERT_OK((*saver)->Save(10));
    saved_ = Pulled(*source_, touched_);
  }

  EventLoop loop_{2};
  std::string root_;
  std::unique_ptr<LocalCluster> source_cluster_;
  std::unique_ptr<Worker> source_;
  std::set<int64_t> touched_;
  std::map<std::string, std::vector<float>> saved_;
};

TEST_P(SparseSnapshotTest, ManifestRecordsEachTableWithItsSlotsAndRowsPerServer) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  auto m = ReadManifest(Dir("model"), 10);
  ASSERT_OK(m);
  ASSERT_EQ(m->sparse_tables.size(), 2u);
  for (const ManifestSparseTable& t : m->sparse_tables) {
    SCOPED_TRACE(t.spec.name);
    EXPECT_EQ(t.spec.dim, DimOf(t.spec.name));
    EXPECT_FALSE(t.slots.empty());
    ASSERT_EQ(t.rows_per_server.size(), 2u);
    EXPECT_GT(t.rows_per_server[0], 0);
    EXPECT_GT(t.rows_per_server[1], 0);
    std::set<int64_t> pushed;
    for (int round = 0; round < 4; ++round) {
      for (int64_t id : RoundIds(t.spec.name, round)) pushed.insert(id);
    }
    EXPECT_EQ(t.rows(), static_cast<int64_t>(pushed.size()));
    EXPECT_EQ(Saved(Dir("model"), 10, t.spec.name).rows.ids, std::vector<int64_t>(pushed.begin(), pushed.end()));
  }
}

// Perturbed after the snapshot (more updates, and rows the snapshot never
// had), then restored: every row is bit-identical to the snapshot's, with
// its slots, and rows created since hold their initial values again.
TEST_P(SparseSnapshotTest, ARestoreBringsBackEveryRowAndSlotBitForBit) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  std::set<int64_t> later = touched_;
  for (int round = 4; round < 7; ++round) ASSERT_OK(TrainSparse(*source_, round, &later));
  ASSERT_NE(Pulled(*source_, touched_), saved_);
  std::set<int64_t> fresh;
  for (int64_t id : later) {
    if (!touched_.count(id)) fresh.insert(id);
  }
  ASSERT_FALSE(fresh.empty());

  auto saver = source_->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  ASSERT_OK(source_->session().Restore(**saver, {}));
  EXPECT_EQ(Pulled(*source_, touched_), saved_);
  const auto initial = Pulled(*source_, fresh);
  for (const SparseTableSpec& spec : source_->graph().SparseTables()) {
    std::vector<float> expected, row(spec.dim);
    for (int64_t id : fresh) {
      InitializeSparseRow(spec, id, row.data());
      expected.insert(expected.end(), row.begin(), row.end());
    }
    EXPECT_EQ(initial.at(spec.name), expected) << spec.name << ": rows created after the snapshot are initial again";
  }
  // The servers' rows and slots: save again and compare with the snapshot.
  ASSERT_OK((*saver)->Save(20));
  for (const std::string& table : kTables) {
    ExpectSameRows(Saved(Dir("model"), 10, table).rows, Saved(Dir("model"), 20, table).rows, table);
  }
  // The restored tables take updates again.
  ASSERT_OK(TrainSparse(*source_, 4));
}

// A snapshot of 2 servers onto 1, 2 and 3: every row lands on the server
// ServerOfId names for the new count, values and slots identical.
TEST_P(SparseSnapshotTest, ASnapshotOfTwoServersRestoresOntoOneTwoOrThree) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  for (int servers : {1, 2, 3}) {
    SCOPED_TRACE(std::to_string(servers) + " server(s)");
    auto cluster = StartCluster(servers);
    ASSERT_TRUE(cluster);
    auto w = NewWorker(*cluster);
    auto saver = w->NewSaver(Dir("model"));
    ASSERT_OK(saver);
    ASSERT_OK(w->session().Restore(**saver, {}));
    EXPECT_EQ(Pulled(*w, touched_), saved_);
    const std::string again = Dir("again" + std::to_string(servers));
    auto resaver = w->NewSaver(again);
    ASSERT_OK(resaver);
    ASSERT_OK((*resaver)->Save(10));
    for (const std::string& table : kTables) {
      ExpectSameRows(Saved(Dir("model"), 10, table).rows, Saved(again, 10, table).rows, table);
      for (int s = 0; s < servers; ++s) {
        auto db = OpenSnapshotDb(ServerDbPath(again, 10, s));
        ASSERT_OK(db);
        auto part = (*db)->ReadSparse(table);
        ASSERT_OK(part);
        for (int64_t id : part->rows.ids) EXPECT_EQ(ServerOfId(id, servers), s) << table << " id " << id;
      }
    }
  }
}

void Tamper(const std::string& path, const std::function<void(rocksdb::DB*)>& change) {
  rocksdb::DB* db = nullptr;
  rocksdb::Options options;
  ASSERT_TRUE(rocksdb::DB::Open(options, path, &db).ok()) << path;
  change(db);
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

// A flipped byte in one server's sparse values is DataLoss naming the
// table, and no server changes anything: the trained target keeps every row.
TEST_P(SparseSnapshotTest, ADamagedSparseChunkIsDataLossAndChangesNothing) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  const std::string dir = Dir("damaged");
  fs::copy(Dir("model"), dir, fs::copy_options::recursive);
  const std::string key = "sdata/emb/user/0001/00000000";  // values, first chunk
  Tamper(ServerDbPath(dir, 10, 1), [&](rocksdb::DB* db) {
    std::string value;
    ASSERT_TRUE(db->Get({}, key, &value).ok()) << key;
    value[0] ^= 0x10;
    ASSERT_TRUE(db->Put({}, key, value).ok());
  });
  for (int round = 4; round < 6; ++round) ASSERT_OK(TrainSparse(*source_, round));
  std::set<int64_t> all = touched_;
  for (int round = 4; round < 6; ++round) {
    for (const std::string& table : kTables) {
      for (int64_t id : RoundIds(table, round)) all.insert(id);
    }
  }
  const auto before = Pulled(*source_, all);
  auto saver = source_->NewSaver(dir);
  ASSERT_OK(saver);
  const StatusOr<RestoreResult> restored = source_->session().Restore(**saver, {});
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.status().code(), StatusCode::kDataLoss) << restored.status();
  EXPECT_NE(restored.status().message().find("emb/user"), std::string::npos) << restored.status();
  EXPECT_EQ(Pulled(*source_, all), before);
  // The servers' rows, slots included, are the trained ones still.
  auto resaver = source_->NewSaver(Dir("after"));
  ASSERT_OK(resaver);
  ASSERT_OK((*resaver)->Save(30));
  const SparseCopy after = Saved(Dir("after"), 30, "emb/user");
  EXPECT_EQ(after.rows.ids.size(), [&] {
    std::set<int64_t> ids;
    for (int round = 0; round < 6; ++round) {
      for (int64_t id : RoundIds("emb/user", round)) ids.insert(id);
    }
    return ids.size();
  }());
}

// Standalone servers restarted with restore_dir bring their part of every
// sparse table back before they listen: a worker that only declares the
// tables pulls the snapshot's rows.
TEST_P(SparseSnapshotTest, RestartedServersRestoreTheirSparseRowsOnStart) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  std::vector<std::unique_ptr<Server>> servers;
  std::vector<Endpoint> endpoints;
  for (int i = 0; i < 2; ++i) {
    ServerOptions o;
    o.index = i;
    o.num_servers = 2;
    o.restore_dir = Dir("model");
    o.model_dir = root_;
    auto started = Server::Start(loop_, WithTestAuth(o));
    ASSERT_OK(started);
    endpoints.push_back((*started)->endpoint());
    servers.push_back(std::move(*started));
  }
  auto w = std::make_unique<Worker>(loop_, endpoints, Options(GetParam()));
  ASSERT_TRUE(w->ready());
  EXPECT_EQ(Pulled(*w, touched_), saved_);
  auto saver = w->NewSaver(Dir("again"));
  ASSERT_OK(saver);
  ASSERT_OK((*saver)->Save(10));
  for (const std::string& table : kTables) {
    ExpectSameRows(Saved(Dir("model"), 10, table).rows, Saved(Dir("again"), 10, table).rows, table);
  }
}

// A restore without slots (a warm start) takes every row's values and
// starts its optimizer slots at their initial values.
TEST_P(SparseSnapshotTest, ARestoreWithoutSlotsStartsEveryRowsSlotsAfresh) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  auto cluster = StartCluster(3);
  ASSERT_TRUE(cluster);
  auto w = NewWorker(*cluster);
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  RestoreOptions ro;
  ro.slots = false;
  ASSERT_OK(w->session().Restore(**saver, ro));
  EXPECT_EQ(Pulled(*w, touched_), saved_);
  auto resaver = w->NewSaver(Dir("again"));
  ASSERT_OK(resaver);
  ASSERT_OK((*resaver)->Save(10));
  for (const std::string& table : kTables) {
    const SparseCopy saved = Saved(Dir("model"), 10, table);
    const SparseCopy again = Saved(Dir("again"), 10, table);
    EXPECT_EQ(again.rows.ids, saved.rows.ids) << table;
    EXPECT_EQ(again.rows.values, saved.rows.values) << table;
    ASSERT_EQ(again.rows.slots.size(), again.slot_defs.size());
    for (size_t k = 0; k < again.rows.slots.size(); ++k) {
      for (float v : again.rows.slots[k]) {
        ASSERT_EQ(v, again.slot_defs[k].initial) << table << " slot " << again.slot_defs[k].name;
      }
    }
  }
}

// A partial restore naming one table takes it and leaves the other table
// (and every dense variable) as it was.
TEST_P(SparseSnapshotTest, APartialRestoreTakesOnlyTheNamedTable) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  auto cluster = StartCluster(2);
  ASSERT_TRUE(cluster);
  auto w = NewWorker(*cluster);
  const auto before = Pulled(*w, touched_);
  const auto dense_before = w->Values();
  auto saver = w->NewSaver(Dir("model"));
  ASSERT_OK(saver);
  RestoreOptions ro;
  ro.partial = true;
  ro.var_list = {"emb/user"};
  ASSERT_OK(w->session().Restore(**saver, ro));
  const auto after = Pulled(*w, touched_);
  EXPECT_EQ(after.at("emb/user"), saved_.at("emb/user"));
  EXPECT_EQ(after.at("emb/item"), before.at("emb/item"));
  for (const auto& [name, value] : w->Values()) {
    EXPECT_TRUE(value.BitEqual(dense_before.at(name))) << name << " was restored by a partial restore of a table";
  }
}

// A model whose table has another dim, or lacks a saved table, is refused
// before any server changes, naming each problem.
TEST_P(SparseSnapshotTest, ARestoreReportsADifferentDimAndAnUnexpectedTable) {
  ASSERT_NO_FATAL_FAILURE(TrainAndSave());
  auto cluster = StartCluster(2);
  ASSERT_TRUE(cluster);
  testing::WorkerOptions o = Options(GetParam());
  o.build = [](Graph* g) -> StatusOr<Model> {
    ASSIGN_OR_RETURN(Model m, testing::Mlp(0.05, 1)(g));
    SparseTableOptions user;
    user.name = "emb/user";
    user.dim = 5;
    g->SparseTable(user);
    if (!g->status().ok()) return g->status();
    return m;
  };
  Worker w(loop_, cluster->endpoints(), o);
  ASSERT_TRUE(w.ready());
  auto saver = w.NewSaver(Dir("model"));
  ASSERT_OK(saver);
  const StatusOr<RestoreResult> r = w.session().Restore(**saver, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status();
  EXPECT_NE(r.status().message().find("sparse table 'emb/user': dim 5 in this model vs 4"), std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("unexpected: sparse table 'emb/item'"), std::string::npos) << r.status();
}

// One push moves a dense variable and a sparse row by exactly 1 each (SGD
// at rate 1); snapshots taken while another worker pushes as fast as it can
// must find them equal: the sparse rows are in the dense shards' cut.
TEST(SparseSnapshotCut, SnapshotsTakenDuringPushesHoldTheDenseAndSparsePartsOfEveryPushOrNone) {
  std::string root = ::testing::TempDir() + "/sparse_cut_test.XXXXXX";
  ASSERT_NE(::mkdtemp(root.data()), nullptr);
  EventLoop loop{2};
  LocalClusterOptions co;
  co.servers = 1;  // a cut is per server: one server holds both parts
  co.model_dir = root;
  auto cluster = LocalCluster::Start(loop, WithTestAuth(co));
  ASSERT_OK(cluster);
  testing::WorkerOptions o;
  o.session.optimizer.kind = "sgd";
  o.session.optimizer.learning_rate = 1;
  o.build = [](Graph* g) -> StatusOr<Model> {
    VariableOptions w;
    w.name = "w";
    w.shape = {1};
    g->Variable(w);
    SparseTableOptions emb;
    emb.name = "emb";
    emb.dim = 1;
    emb.init.kind = InitKind::kZeros;
    g->SparseTable(emb);
    if (!g->status().ok()) return g->status();
    return Model{};
  };
  Worker pusher(loop, (*cluster)->endpoints(), o), chief(loop, (*cluster)->endpoints(), o);
  ASSERT_TRUE(pusher.ready() && chief.ready());
  std::atomic<bool> stop{false};
  std::atomic<int> pushes{0};
  std::thread pushing([&] {
    PushBatch batch;
    batch.gradients["w"] = Tensor::FromVector({1}, {-1.0f});
    batch.sparse_gradients["emb"] = SparseRowsUpdate{Ids({7}), Tensor::FromVector({1, 1}, {-1.0f})};
    while (!stop && pushes < 1000000) {
      if (!pusher.client().Push(batch).ok()) break;
      ++pushes;
    }
  });
  struct Join {  // also when an ASSERT below returns early
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{stop, pushing};
  auto saver = chief.NewSaver(root + "/model");
  ASSERT_OK(saver);
  float last = 0;
  for (int64_t step = 1; step <= 5; ++step) {
    ASSERT_OK((*saver)->Save(step));
    auto reader = SnapshotReader::Open(root + "/model", step);
    ASSERT_OK(reader);
    auto w = (*reader)->ReadPart("w", 0);
    ASSERT_OK(w);
    auto emb = (*reader)->ReadSparse("emb");
    ASSERT_OK(emb);
    const float dense = w->data<float>()[0];
    const float sparse = emb->rows.ids.empty() ? 0.0f : emb->rows.values[0];
    EXPECT_EQ(dense, sparse) << "snapshot " << step << " after " << pushes << " pushes";
    EXPECT_GE(dense, last) << "snapshot " << step << " went back";
    last = dense;
  }
  stop = true;
  pushing.join();
  EXPECT_GT(pushes, 0);
  std::filesystem::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, SparseSnapshotTest, ::testing::Values("adagrad", "adam"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cairn
