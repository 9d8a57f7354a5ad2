#include "common/snapshot/model_dir.h"

#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

namespace cairn {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

// A manifest file with a valid checksum over `json`: for testing what the
// decoder makes of well-formed but wrong content.
std::string WithChecksum(const std::string& json) {
  char line[32];
  std::snprintf(line, sizeof(line), "xxh3 %016" PRIx64 "\n", static_cast<uint64_t>(XXH3_64bits(json.data(), json.size())));
  return json + "\n" + line;
}

// Every field set to something other than its default.
SnapshotManifest FullManifest(int64_t step) {
  SnapshotManifest m;
  m.step = step;
  m.global_step = step + 3;
  m.created = 1700000000.123456789;
  m.num_servers = 3;
  m.mode = TrainingMode{Consistency::kSync, 4, 1234};
  m.optimizer.kind = "adam";
  m.optimizer.learning_rate = 0.001;
  m.optimizer.momentum = 0.5;
  m.optimizer.nesterov = true;
  m.optimizer.beta1 = 0.8;
  m.optimizer.beta2 = 0.99;
  m.optimizer.epsilon = 1e-8;
  m.optimizer.initial_accumulator = 0.3;
  m.optimizer.l1 = 0.01;
  m.optimizer.l2 = 0.02;
  m.optimizer.lr_power = -0.25;

  ManifestVariable w;
  w.spec.name = "dense_0/W";
  w.spec.shape = {1000, 10};
  w.spec.dtype = DType::kFloat32;
  w.spec.init = InitializerSpec{InitKind::kTruncatedNormal, 0.7, -0.3, 0.4, 0.1, 0.02, 0xFEDCBA9876543210ull};
  w.spec.trainable = true;
  w.optimizer = "Adam";
  w.slots = {"m", "v", "beta_power"};
  w.scalar_slots = {false, false, true};
  ManifestVariable g;
  g.spec.name = "global_step";
  g.spec.shape = {};
  g.spec.dtype = DType::kInt64;
  g.spec.init.kind = InitKind::kConstant;
  g.spec.init.value = -std::numeric_limits<double>::infinity();  // JSON has no infinity: must still round-trip
  g.spec.trainable = false;
  m.variables = {w, g};

  m.shards = {{"dense_0/W", 0, 334, 0}, {"dense_0/W", 334, 667, 1}, {"dense_0/W", 667, 1000, 2},
              {"global_step", 0, 1, 1}};
  m.collections = {{"trainable_variables", {"dense_0/W"}},
                   {"weird \"name\"\nwith newline", {"a\tb", "quote\" and \\ backslash", ""}},
                   {"empty", {}}};
  m.workers = {{0, 100, 2, 17, 42}, {1, 99, 2, 16, std::numeric_limits<uint64_t>::max()}};
  m.job_config = "cluster:\n  servers: 3\nname: \"job 'x'\"\n\ttab \xc3\xa9\n";
  m.bytes = uint64_t{5} << 33;
  return m;
}

void ExpectManifestsEqual(const SnapshotManifest& a, const SnapshotManifest& b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.global_step, b.global_step);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.num_servers, b.num_servers);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.optimizer, b.optimizer);
  ASSERT_EQ(a.variables.size(), b.variables.size());
  for (size_t i = 0; i < a.variables.size(); ++i) {
    SCOPED_TRACE("variable " + std::to_string(i));
    EXPECT_EQ(a.variables[i].spec, b.variables[i].spec);
    EXPECT_EQ(a.variables[i].optimizer, b.variables[i].optimizer);
    EXPECT_EQ(a.variables[i].slots, b.variables[i].slots);
    EXPECT_EQ(a.variables[i].scalar_slots, b.variables[i].scalar_slots);
  }
  ASSERT_EQ(a.shards.size(), b.shards.size());
  for (size_t i = 0; i < a.shards.size(); ++i) {
    SCOPED_TRACE("shard " + std::to_string(i));
    EXPECT_EQ(a.shards[i].variable, b.shards[i].variable);
    EXPECT_EQ(a.shards[i].row_begin, b.shards[i].row_begin);
    EXPECT_EQ(a.shards[i].row_end, b.shards[i].row_end);
    EXPECT_EQ(a.shards[i].server, b.shards[i].server);
  }
  EXPECT_EQ(a.collections, b.collections);
  ASSERT_EQ(a.workers.size(), b.workers.size());
  for (size_t i = 0; i < a.workers.size(); ++i) {
    SCOPED_TRACE("worker " + std::to_string(i));
    EXPECT_EQ(a.workers[i].worker, b.workers[i].worker);
    EXPECT_EQ(a.workers[i].steps, b.workers[i].steps);
    EXPECT_EQ(a.workers[i].epoch, b.workers[i].epoch);
    EXPECT_EQ(a.workers[i].step_in_epoch, b.workers[i].step_in_epoch);
    EXPECT_EQ(a.workers[i].seed, b.workers[i].seed);
  }
  EXPECT_EQ(a.job_config, b.job_config);
  EXPECT_EQ(a.bytes, b.bytes);
}

// A fresh directory per test, removed afterwards.
class ModelDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = (fs::temp_directory_path() /
             ("cairn_model_dir_test_" + std::to_string(::getpid()) + "_" + info->name()))
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_);
    dir_ = root_ + "/model";
  }
  void TearDown() override { fs::remove_all(root_); }

  // A prepared model directory with `step` committed and a database file of
  // `db_bytes` bytes in its snapshot directory.
  void Commit(int64_t step, double created = 1700000000, uint64_t db_bytes = 100) {
    ASSERT_TRUE(PrepareModelDir(dir_).ok());
    MakeSnapshotDir(step, db_bytes);
    SnapshotManifest m = FullManifest(step);
    m.created = created;
    ASSERT_EQ(CommitManifest(dir_, m), Status::OK());
  }
  void MakeSnapshotDir(int64_t step, uint64_t db_bytes = 100) {
    const std::string db = ServerDbPath(dir_, step, 0);
    fs::create_directories(db);
    WriteAll(db + "/000001.sst", std::string(db_bytes, 'x'));
  }
  std::set<std::string> Entries() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }

  std::string root_;
  std::string dir_;
};

TEST(ModelDirPaths, AreZeroPaddedUnderTheModelDirectory) {
  EXPECT_EQ(SnapshotDirPath("/m", 42), "/m/snapshot-000000000042");
  EXPECT_EQ(ServerDbPath("/m", 42, 3), "/m/snapshot-000000000042/server-3.db");
  EXPECT_EQ(ManifestPath("/m", 42), "/m/snapshot-000000000042.manifest");
}

TEST_F(ModelDirTest, ManifestRoundTripsEveryField) {
  ASSERT_EQ(PrepareModelDir(dir_), Status::OK());
  ASSERT_EQ(CommitManifest(dir_, FullManifest(7)), Status::OK());
  StatusOr<SnapshotManifest> read = ReadManifest(dir_, 7);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectManifestsEqual(*read, FullManifest(7));
  ASSERT_NE(read->FindVariable("global_step"), nullptr);
  EXPECT_EQ(read->FindVariable("global_step")->spec.dtype, DType::kInt64);
  EXPECT_EQ(read->FindVariable("nope"), nullptr);
}

TEST_F(ModelDirTest, SparseTablesRoundTripAndADenseOnlyManifestHasNone) {
  ASSERT_EQ(PrepareModelDir(dir_), Status::OK());
  SnapshotManifest m = FullManifest(7);
  ManifestSparseTable t;
  t.spec.name = "emb/user";
  t.spec.dim = 16;
  t.spec.init.kind = InitKind::kNormal;
  t.spec.init.stddev = 0.01;
  t.spec.init.seed = 1ULL << 63;
  t.optimizer = "Adam";
  t.slots = {"m", "v", "beta1_power", "beta2_power"};
  t.scalar_slots = {false, false, true, true};
  t.rows_per_server = {3, 0, 1LL << 40};
  m.sparse_tables.push_back(t);
  ASSERT_EQ(CommitManifest(dir_, m), Status::OK());
  ASSERT_EQ(CommitManifest(dir_, FullManifest(8)), Status::OK());
  StatusOr<SnapshotManifest> read = ReadManifest(dir_, 7);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectManifestsEqual(*read, m);
  ASSERT_EQ(read->sparse_tables.size(), 1u);
  const ManifestSparseTable* got = read->FindSparseTable("emb/user");
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->spec, t.spec);
  EXPECT_EQ(got->optimizer, t.optimizer);
  EXPECT_EQ(got->slots, t.slots);
  EXPECT_EQ(got->scalar_slots, t.scalar_slots);
  EXPECT_EQ(got->rows_per_server, t.rows_per_server);
  EXPECT_EQ(got->rows(), 3 + (1LL << 40));
  // Written as before sparse tables when there are none (no "sparse_tables" key).
  EXPECT_EQ(ReadAll(ManifestPath(dir_, 8)).find("sparse_tables"), std::string::npos);
  StatusOr<SnapshotManifest> dense = ReadManifest(dir_, 8);
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_TRUE(dense->sparse_tables.empty());
}

TEST_F(ModelDirTest, ManifestEndsWithAnXxh3LineOverTheJson) {
  Commit(7);
  const std::string content = ReadAll(ManifestPath(dir_, 7));
  const size_t line = content.rfind("\nxxh3 ");
  ASSERT_NE(line, std::string::npos);
  EXPECT_EQ(content, WithChecksum(content.substr(0, line)));
  EXPECT_NE(content.find("\"format\": \"cairn-snapshot-manifest\""), std::string::npos);
  EXPECT_NE(content.find("\"dtype\": \"int64\""), std::string::npos);
}

TEST_F(ModelDirTest, TruncatedManifestIsDataLossNamingTheFile) {
  Commit(7);
  const std::string path = ManifestPath(dir_, 7);
  const std::string content = ReadAll(path);
  const size_t json_end = content.rfind("\nxxh3 ");
  for (size_t length : {size_t{0}, size_t{1}, content.size() / 2, json_end, json_end + 1, json_end + 10,
                        content.size() - 2, content.size() - 1}) {
    SCOPED_TRACE("length " + std::to_string(length));
    WriteAll(path, content.substr(0, length));
    StatusOr<SnapshotManifest> read = ReadManifest(dir_, 7);
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status();
    EXPECT_NE(read.status().message().find(path), std::string::npos) << read.status();
    EXPECT_NE(read.status().message().find("truncated or corrupted"), std::string::npos) << read.status();
  }
}

TEST_F(ModelDirTest, FlippedByteIsDataLoss) {
  Commit(7);
  const std::string path = ManifestPath(dir_, 7);
  const std::string content = ReadAll(path);
  for (size_t pos : {size_t{0}, content.size() / 3, content.size() / 2, content.size() - 5}) {
    SCOPED_TRACE("byte " + std::to_string(pos));
    std::string bad = content;
    bad[pos] ^= 0x01;
    WriteAll(path, bad);
    StatusOr<SnapshotManifest> read = ReadManifest(dir_, 7);
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status();
    EXPECT_NE(read.status().message().find(path), std::string::npos) << read.status();
  }
}

TEST_F(ModelDirTest, MissingManifestIsNotFound) {
  Commit(7);
  StatusOr<SnapshotManifest> read = ReadManifest(dir_, 8);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kNotFound) << read.status();
  EXPECT_NE(read.status().message().find("step 8 was never committed"), std::string::npos) << read.status();
  EXPECT_EQ(ReadManifest(root_ + "/absent", 8).status().code(), StatusCode::kNotFound);
}

TEST_F(ModelDirTest, ManifestOfAnotherStepIsDataLoss) {
  Commit(7);
  fs::rename(ManifestPath(dir_, 7), ManifestPath(dir_, 8));
  StatusOr<SnapshotManifest> read = ReadManifest(dir_, 8);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status();
  EXPECT_NE(read.status().message().find(ManifestPath(dir_, 8)), std::string::npos) << read.status();
}

TEST_F(ModelDirTest, WellFormedButWrongJsonIsDataLoss) {
  Commit(7);
  const std::string path = ManifestPath(dir_, 7);
  const std::string content = ReadAll(path);
  const std::string json = content.substr(0, content.rfind("\nxxh3 "));
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = json;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json at all", "is not valid JSON"},
      {"[1, 2, 3]", "(top level)"},
      {replaced("\"step\": 7", "\"step\": \"7\""), "'step' is not an integer"},
      {replaced("\"bytes\": ", "\"bytez\": "), "'bytes' is missing"},
      {replaced("\"dtype\": \"int64\"", "\"dtype\": \"int65\""), "'variables[1].spec.dtype'"},
      {replaced("\"num_servers\": 3", "\"num_servers\": 3000000000"), "'num_servers' is not in range"},
      {replaced("\"seed\": 42", "\"seed\": -42"), "'workers[0].seed' is not an unsigned integer"},
      {replaced("\"version\": 1", "\"version\": 2"), "'version'"},
  };
  for (const auto& [text, expected] : cases) {
    SCOPED_TRACE(expected);
    WriteAll(path, WithChecksum(text));
    StatusOr<SnapshotManifest> read = ReadManifest(dir_, 7);
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.status().code(), StatusCode::kDataLoss) << read.status();
    EXPECT_NE(read.status().message().find(path), std::string::npos) << read.status();
    EXPECT_NE(read.status().message().find(expected), std::string::npos) << read.status();
  }
}

TEST_F(ModelDirTest, CommittingTwiceIsAlreadyExistsAndKeepsTheFirst) {
  Commit(7);
  SnapshotManifest other = FullManifest(7);
  other.global_step = 1;
  const Status s = CommitManifest(dir_, other);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s;
  StatusOr<SnapshotManifest> read = ReadManifest(dir_, 7);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->global_step, 10);
}

TEST_F(ModelDirTest, CommitLeavesNoTemporaryFile) {
  Commit(7);
  EXPECT_EQ(Entries(), (std::set<std::string>{"cairn-model-dir", "snapshot-000000000007",
                                              "snapshot-000000000007.manifest"}));
}

TEST_F(ModelDirTest, CommitNeedsAPreparedDirectory) {
  EXPECT_EQ(CommitManifest(dir_, FullManifest(1)).code(), StatusCode::kNotFound);
  fs::create_directories(dir_);
  EXPECT_EQ(CommitManifest(dir_, FullManifest(1)).code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(ManifestPath(dir_, 1)));
}

TEST_F(ModelDirTest, PrepareMarksAnEmptyDirectory) {
  fs::create_directories(dir_);
  ASSERT_EQ(PrepareModelDir(dir_), Status::OK());
  EXPECT_TRUE(fs::is_regular_file(dir_ + "/cairn-model-dir"));
  EXPECT_EQ(CheckModelDir(dir_), Status::OK());
}

TEST_F(ModelDirTest, PrepareCreatesAMissingDirectory) {
  const std::string nested = root_ + "/a/b/model";
  ASSERT_EQ(PrepareModelDir(nested), Status::OK());
  EXPECT_EQ(CheckModelDir(nested), Status::OK());
}

TEST_F(ModelDirTest, PrepareIsIdempotentOnAModelDirectoryWithSnapshots) {
  Commit(7);
  EXPECT_EQ(PrepareModelDir(dir_), Status::OK());
  EXPECT_TRUE(fs::exists(ManifestPath(dir_, 7)));
}

TEST_F(ModelDirTest, PrepareRefusesSomeoneElsesDirectory) {
  fs::create_directories(dir_);
  WriteAll(dir_ + "/thesis.tex", "mine");
  const Status s = PrepareModelDir(dir_);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("'" + dir_ + "' is not a Cairn model directory"), std::string::npos) << s;
  EXPECT_NE(s.message().find("cairn-model-dir"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(dir_ + "/cairn-model-dir"));
}

// The processes of a job (servers and chief) prepare the same new directory
// at once: none may take the marker another is writing for a stranger's
// file. (The marker used to be looked for before the directory was listed,
// so one written between the two looked like someone else's directory.)
TEST_F(ModelDirTest, PreparingANewDirectoryFromManyThreadsAtOnceSucceedsInEach) {
  constexpr int kThreads = 4, kRounds = 200;
  for (int round = 0; round < kRounds; ++round) {
    const std::string dir = root_ + "/race-" + std::to_string(round);
    std::vector<Status> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back([&, t] { results[t] = PrepareModelDir(dir); });
    for (std::thread& t : threads) t.join();
    for (int t = 0; t < kThreads; ++t) ASSERT_EQ(results[t], Status::OK()) << "round " << round << ", thread " << t;
    ASSERT_EQ(CheckModelDir(dir), Status::OK());
  }
}

TEST_F(ModelDirTest, PrepareRefusesAFile) {
  WriteAll(dir_, "a file");
  EXPECT_EQ(PrepareModelDir(dir_).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckModelDir(dir_).code(), StatusCode::kFailedPrecondition);
}

TEST_F(ModelDirTest, CheckReportsMissingAndForeignDirectories) {
  Status s = CheckModelDir(dir_);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s;
  EXPECT_NE(s.message().find(dir_), std::string::npos) << s;
  fs::create_directories(dir_);
  s = CheckModelDir(dir_);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("not a Cairn model directory"), std::string::npos) << s;
  EXPECT_EQ(ListSnapshots(dir_).status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(LatestCommittedStep(root_ + "/absent").status().code(), StatusCode::kNotFound);
}

TEST_F(ModelDirTest, ListsCommittedAndUncommittedSnapshotsIgnoringStrayFiles) {
  Commit(10, 1000.5, 100);
  Commit(20, 2000.25, 300);
  MakeSnapshotDir(30, 50);                                // crashed before commit
  Commit(40, 4000, 0);
  fs::remove_all(SnapshotDirPath(dir_, 40));              // committed, databases lost
  Commit(45, 4500, 10);
  WriteAll(ManifestPath(dir_, 45), "garbage");            // committed, manifest damaged
  WriteAll(ManifestPath(dir_, 50) + ".tmp-123", "half");  // crashed mid-commit
  WriteAll(dir_ + "/notes.txt", "hello");
  fs::create_directories(dir_ + "/snapshot-abc");
  fs::create_directories(dir_ + "/snapshot-5");           // not Cairn's padding
  WriteAll(dir_ + "/snapshot-000000000060", "a file, not a directory");

  StatusOr<std::vector<SnapshotListing>> listing = ListSnapshots(dir_);
  ASSERT_TRUE(listing.ok()) << listing.status();
  ASSERT_EQ(listing->size(), 5u);
  const std::vector<SnapshotListing>& l = *listing;
  const int64_t steps[] = {10, 20, 30, 40, 45};
  const bool committed[] = {true, true, false, true, true};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(l[i].step, steps[i]);
    EXPECT_EQ(l[i].committed, committed[i]) << steps[i];
  }
  EXPECT_EQ(l[0].created, 1000.5);
  EXPECT_EQ(l[1].created, 2000.25);
  EXPECT_EQ(l[3].created, 4000);
  EXPECT_GT(l[2].created, 1.6e9);  // the directory's mtime
  EXPECT_GT(l[4].created, 1.6e9);  // the damaged manifest's mtime
  EXPECT_EQ(l[0].bytes, 100 + fs::file_size(ManifestPath(dir_, 10)));
  EXPECT_EQ(l[1].bytes, 300 + fs::file_size(ManifestPath(dir_, 20)));
  EXPECT_EQ(l[2].bytes, 50u);
  EXPECT_EQ(l[3].bytes, fs::file_size(ManifestPath(dir_, 40)));
  EXPECT_EQ(l[4].bytes, 10u + 7u);

  StatusOr<int64_t> latest = LatestCommittedStep(dir_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(*latest, 45);
}

TEST_F(ModelDirTest, LatestCommittedStepIgnoresNewerUncommittedSnapshots) {
  ASSERT_TRUE(PrepareModelDir(dir_).ok());
  StatusOr<int64_t> latest = LatestCommittedStep(dir_);
  EXPECT_EQ(latest.status().code(), StatusCode::kNotFound);
  EXPECT_NE(latest.status().message().find("no committed snapshot"), std::string::npos) << latest.status();
  Commit(5);
  MakeSnapshotDir(9);
  latest = LatestCommittedStep(dir_);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(*latest, 5);
}

// ---- StepsToRemove ----

SnapshotListing Committed(int64_t step, double created = 0) { return {step, true, created, 0}; }
SnapshotListing Uncommitted(int64_t step, double created = 0) { return {step, false, created, 0}; }
constexpr double kHour = 3600;

TEST(StepsToRemove, KeepsExactlyTheNewestMaxToKeep) {
  std::vector<SnapshotListing> listing;
  for (int64_t s = 1; s <= 8; ++s) listing.push_back(Committed(s * 100, s));
  EXPECT_EQ(StepsToRemove(listing, {5, 0}), (std::vector<int64_t>{100, 200, 300}));
  EXPECT_EQ(StepsToRemove(listing, {8, 0}), std::vector<int64_t>{});
  EXPECT_EQ(StepsToRemove(listing, {20, 0}), std::vector<int64_t>{});
}

TEST(StepsToRemove, MaxToKeepZeroOrLessKeepsAll) {
  std::vector<SnapshotListing> listing;
  for (int64_t s = 1; s <= 8; ++s) listing.push_back(Committed(s));
  EXPECT_EQ(StepsToRemove(listing, {0, 0}), std::vector<int64_t>{});
  EXPECT_EQ(StepsToRemove(listing, {-3, 0}), std::vector<int64_t>{});
  EXPECT_EQ(StepsToRemove({}, {1, 0}), std::vector<int64_t>{});
}

TEST(StepsToRemove, IgnoresUncommittedSnapshotsAndInputOrder) {
  const std::vector<SnapshotListing> listing = {Committed(3), Uncommitted(100), Committed(1), Uncommitted(0),
                                                Committed(2)};
  EXPECT_EQ(StepsToRemove(listing, {1, 0}), (std::vector<int64_t>{1, 2}));
}

TEST(StepsToRemove, KeepsTheOldestOfEachPeriodPlusTheNewest) {
  const std::vector<SnapshotListing> listing = {
      Committed(1, 0.5 * kHour), Committed(2, 0.9 * kHour),                   // period 0: keep 1
      Committed(3, 1.6 * kHour), Committed(4, 1.2 * kHour),                   // period 1: keep 4 (older time)
      Committed(5, 2.1 * kHour),                                              // period 2: keep 5
      Committed(6, 3.5 * kHour), Committed(7, 3.6 * kHour), Committed(8, 3.7 * kHour)};  // newest two kept
  EXPECT_EQ(StepsToRemove(listing, {2, 1}), (std::vector<int64_t>{2, 3}));
  // Two-hour periods: [0, 2h) keeps 1, [2h, 4h) keeps 5.
  EXPECT_EQ(StepsToRemove(listing, {2, 2}), (std::vector<int64_t>{2, 3, 4, 6}));
}

TEST(StepsToRemove, NeverRemovesTheNewestEvenWithWeirdTimes) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<SnapshotListing> listing = {Committed(1, 5 * kHour), Committed(2, 5.5 * kHour),
                                                Committed(3, nan), Committed(4, -kHour), Committed(9, nan)};
  EXPECT_EQ(StepsToRemove(listing, {1, 0}), (std::vector<int64_t>{1, 2, 3, 4}));
  // Step 1 is the oldest of period 5 and step 4 of period -1; step 3 has no time.
  EXPECT_EQ(StepsToRemove(listing, {1, 1}), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(StepsToRemove({Committed(9, nan)}, {1, 1}), std::vector<int64_t>{});
}

// ---- ApplyRetention ----

TEST_F(ModelDirTest, ApplyRetentionRemovesOldSnapshotsAndCrashLeftovers) {
  for (int64_t step : {10, 20, 30, 40, 50, 60}) Commit(step, 1000.0 * step);
  MakeSnapshotDir(5);                                            // uncommitted, older: garbage
  MakeSnapshotDir(35);                                           // uncommitted, older: garbage
  MakeSnapshotDir(70);                                           // uncommitted, newer: may be in progress
  WriteAll(ManifestPath(dir_, 25) + ".tmp-999", "stale");       // a crashed commit
  WriteAll(ManifestPath(dir_, 80) + ".tmp-999", "in progress");  // a commit under way

  StatusOr<std::vector<int64_t>> removed = ApplyRetention(dir_, {3, 0});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(Entries(), (std::set<std::string>{
                           "cairn-model-dir",
                           "snapshot-000000000040", "snapshot-000000000040.manifest",
                           "snapshot-000000000050", "snapshot-000000000050.manifest",
                           "snapshot-000000000060", "snapshot-000000000060.manifest",
                           "snapshot-000000000070",
                           "snapshot-000000000080.manifest.tmp-999",
                       }));
  removed = ApplyRetention(dir_, {3, 0});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(removed->empty());
}

TEST_F(ModelDirTest, ApplyRetentionWithoutCommitsRemovesNothing) {
  ASSERT_TRUE(PrepareModelDir(dir_).ok());
  MakeSnapshotDir(5);
  StatusOr<std::vector<int64_t>> removed = ApplyRetention(dir_, {1, 0});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(removed->empty());
  EXPECT_TRUE(fs::exists(SnapshotDirPath(dir_, 5)));
  EXPECT_EQ(ApplyRetention(root_ + "/absent", {1, 0}).status().code(), StatusCode::kNotFound);
}

TEST_F(ModelDirTest, AServerTakesSnapshotRequestsOnlyForItsOwnModelDirectory) {
  fs::create_directories(dir_ + "/sub");
  fs::create_directories(root_ + "/other");
  EXPECT_EQ(CheckOwnModelDir(dir_, dir_, 0), Status::OK());
  EXPECT_EQ(CheckOwnModelDir(dir_, dir_ + "/", 0), Status::OK());
  EXPECT_EQ(CheckOwnModelDir(dir_, dir_ + "/sub", 0), Status::OK());
  EXPECT_EQ(CheckOwnModelDir(dir_, dir_ + "/not-yet-made", 0), Status::OK());
  EXPECT_EQ(CheckOwnModelDir(dir_, dir_ + "/sub/../../other", 1).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckOwnModelDir(dir_, root_ + "/other", 1).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckOwnModelDir(dir_, root_ + "/model-2", 1).code(), StatusCode::kPermissionDenied);  // a prefix, not a parent
  EXPECT_EQ(CheckOwnModelDir(dir_, root_, 1).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckOwnModelDir(dir_, "/etc", 1).code(), StatusCode::kPermissionDenied);
  // A symbolic link inside the model directory that leads out of it is out.
  fs::create_directory_symlink(root_ + "/other", dir_ + "/escape");
  EXPECT_EQ(CheckOwnModelDir(dir_, dir_ + "/escape", 2).code(), StatusCode::kPermissionDenied);
  const Status none = CheckOwnModelDir("", dir_, 3);
  EXPECT_EQ(none.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(none.message().find("server 3"), std::string::npos) << none;
}

}  // namespace
}  // namespace cairn
