// `cairn snapshots / inspect / export` and ReadSnapshot, over a snapshot
// written through the library directly (two "servers", no cluster), and the
// real binary run against it, healthy and damaged.
#include "launch/snapshot_tools.h"

#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <rocksdb/db.h>

#include "common/snapshot/snapshot_db.h"
#include "tests/subprocess.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using testing::CommandResult;
using testing::RunCommand;

constexpr int64_t kStep = 7;
constexpr int64_t kUncommittedStep = 9;
constexpr char kPython[] = "/usr/bin/python3";

// What the snapshot holds, by full name (variables and slots).
struct Source {
  Tensor w, m, v, beta1_power, bias, global_step;

  std::map<std::string, Tensor> ByName() const {
    return {{"dense/W", w},       {"dense/W/Adam/m", m}, {"dense/W/Adam/v", v}, {"dense/W/Adam/beta1_power", beta1_power},
            {"ema/bias", bias}, {"global_step", global_step}};
  }
};

Source MakeSource() {
  Source s;
  std::vector<float> w, m, v;
  for (int i = 0; i < 18; ++i) {
    w.push_back(i * 0.5f - 2.0f);  // -2 ... 6.5, mean 2.25
    m.push_back(i * 0.01f);
    v.push_back(i * 0.001f + 1.0f);
  }
  s.w = Tensor::FromVector({6, 3}, w);
  s.m = Tensor::FromVector({6, 3}, m);
  s.v = Tensor::FromVector({6, 3}, v);
  s.beta1_power = Tensor::FromVector({1}, {0.4782969f});
  s.bias = Tensor::FromVector({3}, {1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f});
  s.global_step = Tensor(DType::kInt64, {});
  *s.global_step.data<int64_t>() = kStep;
  return s;
}

VariableSpec Spec(const std::string& name, Shape shape, DType dtype, bool trainable) {
  VariableSpec spec;
  spec.name = name;
  spec.shape = std::move(shape);
  spec.dtype = dtype;
  spec.trainable = trainable;
  return spec;
}

ShardCopy Copy(const VariableSpec& spec, const Tensor& full, int64_t begin, int64_t end) {
  ShardCopy c;
  c.info.spec = spec;
  c.info.row_begin = begin;
  c.info.row_end = end;
  c.values = spec.shape.empty() ? full.Clone() : full.SliceRows(begin, end).Clone();
  return c;
}

ShardCopy WShard(const Source& s, int64_t begin, int64_t end) {
  ShardCopy c = Copy(Spec("dense/W", {6, 3}, DType::kFloat32, true), s.w, begin, end);
  c.optimizer.kind = "adam";
  c.slot_defs = {{"m", false, 0.0f}, {"v", false, 0.0f}, {"beta1_power", true, 0.9f}};
  c.slots = {s.m.SliceRows(begin, end).Clone(), s.v.SliceRows(begin, end).Clone(), s.beta1_power.Clone()};
  return c;
}

SnapshotManifest MakeManifest() {
  SnapshotManifest m;
  m.step = kStep;
  m.global_step = kStep;
  m.created = static_cast<double>(std::time(nullptr));
  m.num_servers = 2;
  m.optimizer.kind = "adam";
  m.optimizer.learning_rate = 0.001;
  ManifestVariable w{Spec("dense/W", {6, 3}, DType::kFloat32, true), "Adam", {"m", "v", "beta1_power"},
                     {false, false, true}};
  ManifestVariable bias{Spec("ema/bias", {3}, DType::kFloat32, false), "", {}, {}};
  ManifestVariable step{Spec("global_step", {}, DType::kInt64, false), "", {}, {}};
  m.variables = {w, bias, step};
  m.shards = {{"dense/W", 0, 4, 0}, {"dense/W", 4, 6, 1}, {"ema/bias", 0, 3, 0}, {"global_step", 0, 1, 1}};
  m.collections = {{"trainable_variables", {"dense/W"}}, {"moving_averages", {"ema/bias"}}};
  m.workers = {{0, 4, 1, 2, 42}, {1, 3, 1, 1, 42}};
  m.bytes = 3 * 72 + 2 * 4 + 12 + 8;
  return m;
}

// A fresh directory per test, removed at the end, holding a model directory
// with committed snapshot 7 (and, if asked, uncommitted snapshot 9).
class SnapshotToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/snapshot_tools_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    model_dir_ = dir_ + "/model";
    source_ = MakeSource();
    ASSERT_TRUE(PrepareModelDir(model_dir_).ok());
    ASSERT_TRUE(fs::create_directory(SnapshotDirPath(model_dir_, kStep)));
    const std::vector<ShardCopy> server0 = {WShard(source_, 0, 4),
                                            Copy(Spec("ema/bias", {3}, DType::kFloat32, false), source_.bias, 0, 3)};
    const std::vector<ShardCopy> server1 = {WShard(source_, 4, 6),
                                            Copy(Spec("global_step", {}, DType::kInt64, false), source_.global_step, 0, 1)};
    ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(model_dir_, kStep, 0), kStep, server0).ok());
    ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(model_dir_, kStep, 1), kStep, server1).ok());
    const Status committed = CommitManifest(model_dir_, MakeManifest());
    ASSERT_TRUE(committed.ok()) << committed;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Snapshot 9 as a crash leaves it: a database, no manifest.
  void AddUncommittedSnapshot() {
    ASSERT_TRUE(fs::create_directory(SnapshotDirPath(model_dir_, kUncommittedStep)));
    ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(model_dir_, kUncommittedStep, 0), kUncommittedStep,
                                    {WShard(source_, 0, 6)})
                    .ok());
  }

  static CommandResult Cairn(std::vector<std::string> args) {
    args.insert(args.begin(), CAIRN_BINARY);
    return RunCommand(args, std::chrono::seconds(20));
  }

  static Json ParseJson(const CommandResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.output;
    Json j = Json::parse(r.output, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.output;
    return j;
  }

  // Runs `args`, which must fail: exit code 1 and an error naming `problem`.
  static void ExpectFailure(const std::vector<std::string>& args, const std::string& problem) {
    const CommandResult r = Cairn(args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find(problem), std::string::npos) << "expected '" << problem << "' in: " << r.output;
    EXPECT_NE(r.output.find("[error]"), std::string::npos) << r.output;
  }

  // `export` of a broken snapshot must fail and leave nothing behind.
  void ExpectExportFails(const std::string& problem) {
    const std::string out = dir_ + "/out/model.npz";
    fs::create_directories(dir_ + "/out");
    ExpectFailure({"export", model_dir_, "--out", out}, problem);
    EXPECT_TRUE(fs::is_empty(dir_ + "/out")) << "export left files in " << dir_ << "/out";
  }

  std::string dir_, model_dir_;
  Source source_;
};

std::string Hex(const Tensor& t) {
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  const auto* p = static_cast<const unsigned char*>(t.raw());
  for (size_t i = 0; i < t.byte_size(); ++i) {
    hex += kDigits[p[i] >> 4];
    hex += kDigits[p[i] & 15];
  }
  return hex;
}

const Json* FindTensor(const Json& inspect, const std::string& name) {
  for (const Json& t : inspect["tensors"]) {
    if (t["name"] == name) return &t;
  }
  return nullptr;
}

TEST_F(SnapshotToolsTest, ReadSnapshotReassemblesEveryVariableAndSlotBitForBit) {
  SnapshotManifest manifest;
  StatusOr<std::vector<SnapshotTensor>> tensors = ReadSnapshot(model_dir_, -1, "", &manifest);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ(manifest.step, kStep);
  const std::vector<std::string> order = {"dense/W",  "dense/W/Adam/beta1_power", "dense/W/Adam/m", "dense/W/Adam/v",
                                          "ema/bias", "global_step"};
  ASSERT_EQ(tensors->size(), order.size());
  const std::map<std::string, Tensor> expected = source_.ByName();
  for (size_t i = 0; i < order.size(); ++i) {
    const SnapshotTensor& t = (*tensors)[i];
    EXPECT_EQ(t.name, order[i]);
    const Tensor& want = expected.at(t.name);
    ASSERT_EQ(t.value.dtype(), want.dtype()) << t.name;
    ASSERT_EQ(t.value.shape(), want.shape()) << t.name;
    EXPECT_EQ(std::memcmp(t.value.raw(), want.raw(), want.byte_size()), 0) << t.name;
    EXPECT_EQ(t.slot_of, t.name.starts_with("dense/W/") ? "dense/W" : "") << t.name;
    EXPECT_EQ(t.trainable, t.name == "dense/W") << t.name;
  }
}

TEST_F(SnapshotToolsTest, ReadSnapshotOfOneVariableBringsItsSlots) {
  StatusOr<std::vector<SnapshotTensor>> w = ReadSnapshot(model_dir_, kStep, "dense/W");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->size(), 4u);
  StatusOr<std::vector<SnapshotTensor>> none = ReadSnapshot(model_dir_, kStep, "dense/b");
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("dense/b"), std::string::npos) << none.status();
}

TEST_F(SnapshotToolsTest, SnapshotsListsCommittedAndUncommittedSteps) {
  AddUncommittedSnapshot();
  const Json list = ParseJson(Cairn({"snapshots", model_dir_, "--json"}));
  ASSERT_TRUE(list.is_array()) << list;
  ASSERT_EQ(list.size(), 2u) << list;
  EXPECT_EQ(list[0]["step"], kStep);
  EXPECT_EQ(list[0]["committed"], true);
  EXPECT_EQ(list[0]["global_step"], kStep);
  EXPECT_GT(list[0]["bytes"].get<uint64_t>(), 0u);
  EXPECT_TRUE(std::regex_match(list[0]["created_local"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")))
      << list[0];
  EXPECT_EQ(list[1]["step"], kUncommittedStep);
  EXPECT_EQ(list[1]["committed"], false);
  EXPECT_TRUE(list[1]["global_step"].is_null());

  const CommandResult table = Cairn({"snapshots", model_dir_});
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find(" committed"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("uncommitted"), std::string::npos) << table.output;
}

TEST_F(SnapshotToolsTest, InspectJsonReportsStatisticsCollectionsAndWorkers) {
  const Json j = ParseJson(Cairn({"inspect", model_dir_, "--json"}));
  EXPECT_EQ(j["step"], kStep);
  EXPECT_EQ(j["global_step"], kStep);
  EXPECT_EQ(j["num_servers"], 2);
  EXPECT_EQ(j["optimizer"]["kind"], "adam");
  EXPECT_EQ(j["bytes"], MakeManifest().bytes);
  ASSERT_EQ(j["tensors"].size(), 6u) << j;

  const Json* w = FindTensor(j, "dense/W");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ((*w)["dtype"], "float32");
  EXPECT_EQ((*w)["shape"], Json::array({6, 3}));
  EXPECT_EQ((*w)["trainable"], true);
  EXPECT_TRUE((*w)["slot_of"].is_null());
  EXPECT_DOUBLE_EQ((*w)["min"].get<double>(), -2.0);
  EXPECT_DOUBLE_EQ((*w)["max"].get<double>(), 6.5);
  EXPECT_DOUBLE_EQ((*w)["mean"].get<double>(), 2.25);
  EXPECT_EQ((*w)["nan_count"], 0);

  const Json* beta = FindTensor(j, "dense/W/Adam/beta1_power");
  ASSERT_NE(beta, nullptr);
  EXPECT_EQ((*beta)["slot_of"], "dense/W");
  EXPECT_EQ((*beta)["trainable"], false);
  EXPECT_EQ((*beta)["shape"], Json::array({1}));
  EXPECT_NEAR((*beta)["max"].get<double>(), 0.4782969, 1e-7);

  const Json* bias = FindTensor(j, "ema/bias");  // {1, NaN, 3}
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ((*bias)["nan_count"], 1);
  EXPECT_DOUBLE_EQ((*bias)["min"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ((*bias)["max"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ((*bias)["mean"].get<double>(), 2.0);

  const Json* step = FindTensor(j, "global_step");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ((*step)["dtype"], "int64");
  EXPECT_EQ((*step)["shape"], Json::array());
  EXPECT_EQ((*step)["min"], kStep);
  EXPECT_EQ((*step)["max"], kStep);
  EXPECT_DOUBLE_EQ((*step)["mean"].get<double>(), 7.0);

  EXPECT_EQ(j["collections"]["trainable_variables"], Json::array({"dense/W"}));
  ASSERT_EQ(j["workers"].size(), 2u);
  EXPECT_EQ(j["workers"][0]["steps"], 4);
  EXPECT_EQ(j["workers"][0]["step_in_epoch"], 2);
  EXPECT_EQ(j["workers"][1]["seed"], 42);
}

TEST_F(SnapshotToolsTest, InspectOfOneVariableShowsItAndItsSlotsOnly) {
  const Json j = ParseJson(Cairn({"inspect", model_dir_, "--step", "7", "--var", "dense/W", "--json"}));
  std::vector<std::string> names;
  for (const Json& t : j["tensors"]) names.push_back(t["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"dense/W", "dense/W/Adam/beta1_power", "dense/W/Adam/m",
                                             "dense/W/Adam/v"}));

  const CommandResult text = Cairn({"inspect", model_dir_, "--var", "dense/W"});
  EXPECT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("snapshot 7"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("\ndense/W/Adam/m "), std::string::npos) << text.output;
  EXPECT_EQ(text.output.find("\nema/bias "), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("worker 1: steps 3"), std::string::npos) << text.output;

  ExpectFailure({"inspect", model_dir_, "--var", "dense/b"}, "no variable 'dense/b'");
}

TEST_F(SnapshotToolsTest, InspectTextMarksNaNs) {
  const CommandResult r = Cairn({"inspect", model_dir_});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("(1 NaN of 3)"), std::string::npos) << r.output;
}

TEST_F(SnapshotToolsTest, ExportWritesAnArchiveNumpyReadsBack) {
  const std::string out = dir_ + "/model.npz";
  const CommandResult r = Cairn({"export", model_dir_, "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("6 arrays"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(out));

  if (RunCommand({kPython, "-c", "import numpy"}, std::chrono::seconds(20)).exit_code != 0) {
    GTEST_SKIP() << "no python3 with numpy at " << kPython << ": archive written but not read back";
  }
  const char* script =
      "import json, sys, numpy\n"
      "with numpy.load(sys.argv[1]) as z:\n"
      "    print(json.dumps({k: {'dtype': z[k].dtype.str, 'shape': list(z[k].shape), 'hex': z[k].tobytes().hex()}\n"
      "                      for k in z.files}))\n";
  const Json arrays = ParseJson(RunCommand({kPython, "-c", script, out}, std::chrono::seconds(20)));
  const std::map<std::string, Tensor> expected = source_.ByName();
  ASSERT_EQ(arrays.size(), expected.size()) << arrays;
  for (const auto& [name, want] : expected) {
    ASSERT_TRUE(arrays.contains(name)) << name << " missing from " << arrays;
    const Json& a = arrays[name];
    EXPECT_EQ(a["dtype"], want.dtype() == DType::kInt64 ? "<i8" : "<f4") << name;
    EXPECT_EQ(a["shape"].get<Shape>(), want.shape()) << name;
    EXPECT_EQ(a["hex"], Hex(want)) << name;
  }
}

TEST_F(SnapshotToolsTest, MissingDirectoryIsAnError) {
  const std::string missing = dir_ + "/nowhere";
  ExpectFailure({"snapshots", missing}, "does not exist");
  ExpectFailure({"inspect", missing}, "does not exist");
  ExpectFailure({"export", missing, "--out", dir_ + "/x.npz"}, "does not exist");
  EXPECT_FALSE(fs::exists(dir_ + "/x.npz"));
  ExpectFailure({"export", model_dir_, "--out", dir_ + "/nodir/x.npz"}, "no directory '" + dir_ + "/nodir'");
}

TEST_F(SnapshotToolsTest, ForeignDirectoryIsAnError) {
  const std::string foreign = dir_ + "/foreign";
  fs::create_directory(foreign);
  std::ofstream(foreign + "/notes.txt") << "not a model\n";
  ExpectFailure({"snapshots", foreign}, "not a Cairn model directory");
  ExpectFailure({"inspect", foreign}, "not a Cairn model directory");
}

TEST_F(SnapshotToolsTest, TruncatedManifestIsDataLoss) {
  const std::string manifest = ManifestPath(model_dir_, kStep);
  fs::resize_file(manifest, fs::file_size(manifest) / 2);
  ExpectFailure({"inspect", model_dir_}, "DataLoss: snapshot 7: manifest '" + manifest + "' is truncated");
  ExpectExportFails("is truncated");
  // Listing still shows the step, with the damage.
  const Json list = ParseJson(Cairn({"snapshots", model_dir_, "--json"}));
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["committed"], true);
  EXPECT_NE(list[0]["error"].get<std::string>().find("truncated"), std::string::npos) << list;
}

TEST_F(SnapshotToolsTest, ManifestShardsThatMissOrRepeatRowsAreDataLoss) {
  const auto recommit = [&](std::vector<ManifestShard> shards) {
    SnapshotManifest m = MakeManifest();
    m.shards = std::move(shards);
    fs::remove(ManifestPath(model_dir_, kStep));
    const Status s = CommitManifest(model_dir_, m);
    ASSERT_TRUE(s.ok()) << s;
  };
  recommit({{"dense/W", 0, 4, 0}, {"ema/bias", 0, 3, 0}, {"global_step", 0, 1, 1}});
  StatusOr<std::vector<SnapshotTensor>> gap = ReadSnapshot(model_dir_, kStep);
  EXPECT_EQ(gap.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(gap.status().message().find("rows [4, 6) of 'dense/W' are in no shard"), std::string::npos)
      << gap.status();

  recommit({{"dense/W", 0, 4, 0}, {"dense/W", 3, 6, 1}, {"ema/bias", 0, 3, 0}, {"global_step", 0, 1, 1}});
  StatusOr<std::vector<SnapshotTensor>> overlap = ReadSnapshot(model_dir_, kStep);
  EXPECT_EQ(overlap.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(overlap.status().message().find("more than one shard"), std::string::npos) << overlap.status();

  // Rows the manifest puts on a server whose database does not hold them.
  recommit({{"dense/W", 0, 4, 0}, {"dense/W", 4, 6, 0}, {"ema/bias", 0, 3, 0}, {"global_step", 0, 1, 1}});
  StatusOr<std::vector<SnapshotTensor>> misplaced = ReadSnapshot(model_dir_, kStep);
  EXPECT_EQ(misplaced.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(misplaced.status().message().find("server 0's database holds rows [0, 4)"), std::string::npos)
      << misplaced.status();
}

TEST_F(SnapshotToolsTest, DeletedServerDatabaseIsNamed) {
  const std::string db = ServerDbPath(model_dir_, kStep, 1);
  fs::remove_all(db);
  ExpectFailure({"inspect", model_dir_}, "NotFound: snapshot 7: no snapshot database at '" + db + "'");
  ExpectExportFails(db);
  // Server 0's variables alone still read.
  const Json j = ParseJson(Cairn({"inspect", model_dir_, "--var", "ema/bias", "--json"}));
  EXPECT_EQ(j["tensors"].size(), 1u);
}

TEST_F(SnapshotToolsTest, FlippedValueByteIsDataLoss) {
  {
    const std::string path = ServerDbPath(model_dir_, kStep, 1);
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const std::string key = "data/dense/W/0000/00000000";
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &value).ok());
    ASSERT_EQ(value.size(), 2 * 3 * sizeof(float));
    value[5] ^= 0x10;
    rocksdb::WriteOptions sync;
    sync.sync = true;
    ASSERT_TRUE(db->Put(sync, key, value).ok());
    ASSERT_TRUE(db->Close().ok());
  }
  ExpectFailure({"inspect", model_dir_}, "DataLoss: snapshot 7: snapshot database");
  ExpectFailure({"inspect", model_dir_, "--var", "dense/W"}, "shard 'dense/W' part 0");
  ExpectExportFails("shard 'dense/W' part 0");
}

TEST_F(SnapshotToolsTest, UncommittedStepIsAnError) {
  AddUncommittedSnapshot();
  ExpectFailure({"inspect", model_dir_, "--step", "9"}, "snapshot 9: not committed");
  ExpectFailure({"export", model_dir_, "--step", "9", "--out", dir_ + "/nine.npz"}, "not committed");
  EXPECT_FALSE(fs::exists(dir_ + "/nine.npz"));
  ExpectFailure({"inspect", model_dir_, "--step", "8"}, "step 8 was never committed");
}

// A 2-server snapshot of one Adagrad-trained sparse table "emb" (dim 2):
// server 0 holds ids {-3, 5}, server 1 ids {2, 9}.
class SparseSnapshotToolsTest : public SnapshotToolsTest {
 protected:
  void SetUp() override {
    SnapshotToolsTest::SetUp();
    sparse_dir_ = dir_ + "/sparse_model";
    ASSERT_TRUE(PrepareModelDir(sparse_dir_).ok());
    ASSERT_TRUE(fs::create_directory(SnapshotDirPath(sparse_dir_, kStep)));
    ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(sparse_dir_, kStep, 0), kStep, {}, {Part({-3, 5}, 0)}).ok());
    ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(sparse_dir_, kStep, 1), kStep, {}, {Part({2, 9}, 10)}).ok());
    SnapshotManifest m;
    m.step = m.global_step = kStep;
    m.num_servers = 2;
    m.optimizer.kind = "adagrad";
    ManifestSparseTable t;
    t.spec = Spec();
    t.optimizer = "Adagrad";
    t.slots = {"accumulator"};
    t.scalar_slots = {false};
    t.rows_per_server = {2, 2};
    m.sparse_tables = {t};
    ASSERT_TRUE(CommitManifest(sparse_dir_, m).ok());
  }

  static SparseTableSpec Spec() {
    SparseTableSpec spec;
    spec.name = "emb";
    spec.dim = 2;
    spec.init.kind = InitKind::kZeros;
    return spec;
  }
  // Row i of `ids` holds values (base + 2i, base + 2i + 1) and accumulators 100 + those.
  static SparseCopy Part(const std::vector<int64_t>& ids, float base) {
    SparseCopy c;
    c.spec = Spec();
    c.optimizer.kind = "adagrad";
    c.slot_defs = {{"accumulator", false, 0.1f}};
    c.rows.dim = 2;
    c.rows.ids = ids;
    c.rows.slots.resize(1);
    for (size_t i = 0; i < 2 * ids.size(); ++i) {
      c.rows.values.push_back(base + static_cast<float>(i));
      c.rows.slots[0].push_back(100 + base + static_cast<float>(i));
    }
    return c;
  }

  std::string sparse_dir_;
};

TEST_F(SparseSnapshotToolsTest, ReadSnapshotGathersATablesIdsValuesAndSlotsSortedById) {
  StatusOr<std::vector<SnapshotTensor>> tensors = ReadSnapshot(sparse_dir_, -1);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 3u);
  const SnapshotTensor& ids = (*tensors)[0];
  const SnapshotTensor& values = (*tensors)[1];
  const SnapshotTensor& acc = (*tensors)[2];
  EXPECT_EQ(ids.name, "emb/ids");
  EXPECT_EQ(values.name, "emb/values");
  EXPECT_EQ(acc.name, "emb/Adagrad/accumulator");
  EXPECT_EQ(acc.sparse_table, "emb");
  EXPECT_EQ(ids.value.shape(), (Shape{4}));
  EXPECT_EQ(std::vector<int64_t>(ids.value.data<int64_t>(), ids.value.data<int64_t>() + 4),
            (std::vector<int64_t>{-3, 2, 5, 9}));
  EXPECT_EQ(values.value.shape(), (Shape{4, 2}));
  EXPECT_EQ(std::vector<float>(values.value.data<float>(), values.value.data<float>() + 8),
            (std::vector<float>{0, 1, 10, 11, 2, 3, 12, 13}));
  EXPECT_EQ(std::vector<float>(acc.value.data<float>(), acc.value.data<float>() + 8),
            (std::vector<float>{100, 101, 110, 111, 102, 103, 112, 113}));
}

TEST_F(SparseSnapshotToolsTest, InspectShowsRowsDimBytesAndValueStatistics) {
  const Json j = ParseJson(Cairn({"inspect", sparse_dir_, "--json"}));
  ASSERT_EQ(j["sparse_tables"].size(), 1u) << j;
  const Json& t = j["sparse_tables"][0];
  EXPECT_EQ(t["name"], "emb");
  EXPECT_EQ(t["dim"], 2);
  EXPECT_EQ(t["rows"], 4);
  EXPECT_EQ(t["bytes"], 4 * 8 + 8 * 4 + 8 * 4);
  EXPECT_EQ(t["rows_per_server"], Json::array({2, 2}));
  EXPECT_DOUBLE_EQ(t["min"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(t["max"].get<double>(), 13.0);
  EXPECT_DOUBLE_EQ(t["mean"].get<double>(), 6.5);
  const CommandResult text = Cairn({"inspect", sparse_dir_});
  EXPECT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("sparse tables:"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("emb/Adagrad/accumulator"), std::string::npos) << text.output;
}

TEST_F(SparseSnapshotToolsTest, ExportWritesIdsValuesAndSlotsNumpyReadsBack) {
  const std::string out = dir_ + "/sparse.npz";
  const CommandResult r = Cairn({"export", sparse_dir_, "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(fs::exists(out));
  if (RunCommand({kPython, "-c", "import numpy"}, std::chrono::seconds(20)).exit_code != 0) {
    GTEST_SKIP() << "no python3 with numpy at " << kPython << ": archive written but not read back";
  }
  const char* script =
      "import json, sys, numpy\n"
      "with numpy.load(sys.argv[1]) as z:\n"
      "    print(json.dumps({k: {'dtype': z[k].dtype.str, 'shape': list(z[k].shape), 'values': z[k].tolist()}\n"
      "                      for k in z.files}))\n";
  const Json arrays = ParseJson(RunCommand({kPython, "-c", script, out}, std::chrono::seconds(20)));
  ASSERT_EQ(arrays.size(), 3u) << arrays;
  EXPECT_EQ(arrays["emb/ids"]["dtype"], "<i8");
  EXPECT_EQ(arrays["emb/ids"]["values"], Json::array({-3, 2, 5, 9}));
  EXPECT_EQ(arrays["emb/values"]["shape"], Json::array({4, 2}));
  EXPECT_EQ(arrays["emb/values"]["values"][1], Json::array({10.0, 11.0}));
  EXPECT_EQ(arrays["emb/Adagrad/accumulator"]["values"][3], Json::array({112.0, 113.0}));
}

}  // namespace
}  // namespace cairn
