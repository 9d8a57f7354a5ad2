#include "common/snapshot/snapshot_db.h"

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <functional>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "tests/fault_file_system.h"

namespace cairn {
namespace {

// A fresh directory per test, removed at the end.
class SnapshotStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/snapshot_store_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string DbPath(const std::string& name = "server-0.db") const { return dir_ + "/" + name; }

  std::string dir_;
};

// Float bit patterns a lossy path would change: NaN payloads, -0.0, denormals, infinities.
void FillBits(Tensor* t, uint32_t seed) {
  static const uint32_t kSpecial[] = {0x7fc00001, 0xffc12345, 0x80000000, 0x00000001, 0x807fffff, 0x7f800000};
  auto* words = static_cast<uint32_t*>(t->raw());
  const size_t n = t->byte_size() / 4;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    words[i] = i % 5 == 0 ? kSpecial[(i / 5) % 6] : x;
  }
}

ShardCopy MakeCopy(const std::string& name, Shape shape, DType dtype, int64_t row_begin, int64_t row_end,
                   std::vector<SlotDef> slot_defs, uint32_t seed) {
  ShardCopy copy;
  copy.info.spec.name = name;
  copy.info.spec.shape = std::move(shape);
  copy.info.spec.dtype = dtype;
  copy.info.spec.trainable = !slot_defs.empty();
  copy.info.row_begin = row_begin;
  copy.info.row_end = row_end;
  copy.slot_defs = std::move(slot_defs);
  if (!copy.slot_defs.empty()) copy.optimizer.kind = "adam";
  copy.values = Tensor(dtype, copy.info.shape());
  FillBits(&copy.values, seed);
  for (const SlotDef& def : copy.slot_defs) {
    Tensor slot(DType::kFloat32, def.scalar ? Shape{1} : copy.info.shape());
    FillBits(&slot, ++seed);
    copy.slots.push_back(std::move(slot));
  }
  return copy;
}

// Rows [2, 9) of a float32 [10, 7] variable with Adam-like slots; all of an
// int64 [5, 3] counter; a float32 scalar; an int64 scalar.
std::vector<ShardCopy> MakeShards() {
  std::vector<ShardCopy> shards;
  shards.push_back(MakeCopy("layer1/w", {10, 7}, DType::kFloat32, 2, 9,
                            {{"m", false, 0.0f}, {"v", false, 0.0f}, {"beta1_power", true, 0.9f}}, 1));
  shards.push_back(MakeCopy("counts", {5, 3}, DType::kInt64, 0, 5, {}, 10));
  shards.push_back(MakeCopy("lr", {}, DType::kFloat32, 0, 1, {}, 20));
  shards.push_back(MakeCopy("global_step", {}, DType::kInt64, 0, 1, {}, 30));
  return shards;
}

const Tensor& Part(const ShardCopy& copy, int part) { return part == 0 ? copy.values : copy.slots[part - 1]; }

void ExpectSameBytes(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.dtype(), want.dtype());
  EXPECT_EQ(got.shape(), want.shape());
  ASSERT_EQ(got.byte_size(), want.byte_size());
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.byte_size()), 0);
}

// Every part whole, and every row range [b, e) of every per-element part.
void ExpectRoundTrip(SnapshotDb& db, const std::vector<ShardCopy>& shards) {
  for (const ShardCopy& copy : shards) {
    SCOPED_TRACE(copy.info.spec.name);
    for (int part = 0; part <= static_cast<int>(copy.slots.size()); ++part) {
      SCOPED_TRACE(part);
      const Tensor& want = Part(copy, part);
      StatusOr<Tensor> got = db.ReadPart(copy.info.spec.name, part);
      ASSERT_TRUE(got.ok()) << got.status();
      ExpectSameBytes(*got, want);
      if (part > 0 && copy.slot_defs[part - 1].scalar) {
        float value = 0;
        ASSERT_TRUE(db.ReadRows(copy.info.spec.name, part, 0, 0, &value, sizeof value).ok());
        EXPECT_EQ(std::memcmp(&value, want.raw(), sizeof value), 0);
        continue;
      }
      const int64_t rows = copy.info.row_end - copy.info.row_begin;
      const uint64_t row_bytes = want.byte_size() / rows;
      for (int64_t b = copy.info.row_begin; b <= copy.info.row_end; ++b) {
        for (int64_t e = b; e <= copy.info.row_end; ++e) {
          std::vector<char> out((e - b) * row_bytes + 1);
          const Status s = db.ReadRows(copy.info.spec.name, part, b, e, out.data(), (e - b) * row_bytes);
          ASSERT_TRUE(s.ok()) << s << " rows [" << b << ", " << e << ")";
          const char* base = static_cast<const char*>(want.raw()) + (b - copy.info.row_begin) * row_bytes;
          EXPECT_EQ(std::memcmp(out.data(), base, (e - b) * row_bytes), 0) << "rows [" << b << ", " << e << ")";
        }
      }
    }
  }
}

std::unique_ptr<SnapshotDb> OpenOk(const std::string& path) {
  StatusOr<std::unique_ptr<SnapshotDb>> db = OpenSnapshotDb(path);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? std::move(db).value() : nullptr;
}

// Changes the database with RocksDB directly, as a crash or a bad disk would.
void Tamper(const std::string& path, const std::function<void(rocksdb::DB*)>& change) {
  rocksdb::DB* db = nullptr;
  rocksdb::Options options;
  ASSERT_TRUE(rocksdb::DB::Open(options, path, &db).ok());
  change(db);
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

void ExpectDataLoss(const Status& s, const std::vector<std::string>& mentions) {
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
  for (const std::string& m : mentions) EXPECT_NE(s.message().find(m), std::string::npos) << s << " lacks " << m;
}

TEST_F(SnapshotStoreTest, ShardsRoundTripBitForBitInSmallChunks) {
  const std::vector<ShardCopy> shards = MakeShards();
  SnapshotWriteOptions options;
  options.chunk_bytes = 20;  // smaller than a 28-byte row of layer1/w; its 196-byte parts end in a short chunk
  SnapshotIoStats stats;
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 42, shards, options, &stats).ok());
  EXPECT_EQ(stats.bytes, 3 * 196 + 4 + 120 + 4 + 8);
  EXPECT_GT(stats.seconds, 0);

  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  EXPECT_EQ(db->step(), 42);
  ASSERT_EQ(db->shards().size(), 4u);
  EXPECT_EQ(db->shards()[0].info.spec.name, "counts");
  EXPECT_EQ(db->shards()[3].info.spec.name, "lr");
  const ShardRecord* w = db->Find("layer1/w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->info.spec, shards[0].info.spec);
  EXPECT_EQ(w->info.row_begin, 2);
  EXPECT_EQ(w->info.row_end, 9);
  EXPECT_EQ(w->optimizer, shards[0].optimizer);
  ASSERT_EQ(w->slot_defs.size(), 3u);
  EXPECT_EQ(w->slot_defs[2].name, "beta1_power");
  EXPECT_TRUE(w->slot_defs[2].scalar);
  EXPECT_EQ(w->slot_defs[2].initial, 0.9f);
  EXPECT_EQ(w->step, 42);
  EXPECT_EQ(w->part_bytes, (std::vector<uint64_t>{196, 196, 196, 4}));
  EXPECT_EQ(w->chunk_xxh3[0].size(), 10u);
  EXPECT_EQ(w->total_bytes(), 592u);
  EXPECT_EQ(db->Find("nope"), nullptr);
  ExpectRoundTrip(*db, shards);
}

TEST_F(SnapshotStoreTest, ShardsRoundTripInOneChunkPerPart) {
  const std::vector<ShardCopy> shards = MakeShards();
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 7, shards).ok());
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  EXPECT_EQ(db->Find("counts")->chunk_xxh3[0].size(), 1u);
  ExpectRoundTrip(*db, shards);
}

TEST_F(SnapshotStoreTest, LargeChunksRoundTripInPieces) {
  // 1 MiB parts in 300000-byte chunks: reads hash and copy a chunk in pieces.
  std::vector<ShardCopy> shards;
  shards.push_back(MakeCopy("big", {1100, 256}, DType::kFloat32, 50, 1074, {{"m", false, 0.0f}}, 5));
  SnapshotWriteOptions options;
  options.chunk_bytes = 300000;
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 9, shards, options).ok());
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  for (int part = 0; part < 2; ++part) {
    const Tensor& want = Part(shards[0], part);
    StatusOr<Tensor> got = db->ReadPart("big", part);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameBytes(*got, want);
    for (auto [b, e] : {std::pair<int64_t, int64_t>{50, 1074}, {100, 700}, {342, 343}, {1073, 1074}, {60, 60}}) {
      std::vector<char> out((e - b) * 1024);
      ASSERT_TRUE(db->ReadRows("big", part, b, e, out.data(), out.size()).ok());
      EXPECT_EQ(std::memcmp(out.data(), static_cast<const char*>(want.raw()) + (b - 50) * 1024, out.size()), 0)
          << "part " << part << " rows [" << b << ", " << e << ")";
    }
  }
}

TEST_F(SnapshotStoreTest, UnsyncedWriteThroughAnotherFileSystemRoundTrips) {
  const std::vector<ShardCopy> shards = MakeShards();
  FaultFileSystem no_sync;
  no_sync.SkipSyncs(true);
  SnapshotWriteOptions options;
  options.env.fs = &no_sync;
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 7, shards, options).ok());
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  ExpectRoundTrip(*db, shards);
}

TEST_F(SnapshotStoreTest, ServerWithoutShardsWritesAnEmptySnapshot) {
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 3, {}).ok());
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  EXPECT_EQ(db->step(), 3);
  EXPECT_TRUE(db->shards().empty());
}

TEST_F(SnapshotStoreTest, NamesThatExtendAnotherShardsNameDoNotMixTheirChunks) {
  // "a/0000/0001..." sorts between chunks of "a" part 0.
  std::vector<ShardCopy> shards;
  shards.push_back(MakeCopy("a", {40, 1}, DType::kFloat32, 0, 40, {}, 1));
  shards.push_back(MakeCopy("a/0000/0000", {4, 1}, DType::kFloat32, 0, 4, {}, 2));
  shards.push_back(MakeCopy("a-b", {4, 1}, DType::kFloat32, 0, 4, {}, 3));
  SnapshotWriteOptions options;
  options.chunk_bytes = 4;
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 1, shards, options).ok());
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  ExpectRoundTrip(*db, shards);
}

// A server's part of an Adam-trained sparse table: 5 rows of dim 3 with
// per-element m and v and per-row beta powers.
SparseCopy MakeSparse(const std::string& name = "emb/user") {
  SparseCopy c;
  c.spec.name = name;
  c.spec.dim = 3;
  c.spec.init.kind = InitKind::kUniform;
  c.optimizer.kind = "adam";
  c.slot_defs = {{"m", false, 0}, {"v", false, 0}, {"beta1_power", true, 0.9f}, {"beta2_power", true, 0.999f}};
  c.rows.dim = 3;
  c.rows.ids = {-7, 0, 3, 1LL << 50, INT64_MAX};
  for (size_t i = 0; i < 15; ++i) c.rows.values.push_back(0.1f * static_cast<float>(i) - 0.7f);
  c.rows.slots = {std::vector<float>(15), std::vector<float>(15), std::vector<float>(5), std::vector<float>(5)};
  for (size_t k = 0; k < 4; ++k) {
    for (size_t i = 0; i < c.rows.slots[k].size(); ++i) c.rows.slots[k][i] = 1.0f / static_cast<float>(i + k + 1);
  }
  return c;
}

TEST_F(SnapshotStoreTest, SparseTablesRoundTripBitForBitBesideTheShards) {
  const std::vector<ShardCopy> shards = MakeShards();
  const std::vector<SparseCopy> sparse = {MakeSparse("emb/user"), MakeSparse("emb")};
  SnapshotWriteOptions options;
  options.chunk_bytes = 16;  // several chunks per part, the last one short
  SnapshotIoStats stats;
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 42, shards, sparse, options, &stats).ok());
  EXPECT_EQ(stats.bytes, 3 * 196 + 4 + 120 + 4 + 8 + 2 * (5 * 8 + 15 * 4 * 3 + 5 * 4 * 2));
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  ExpectRoundTrip(*db, shards);
  ASSERT_EQ(db->sparse_tables().size(), 2u);
  EXPECT_EQ(db->sparse_tables()[0].spec.name, "emb");
  for (const SparseCopy& want : sparse) {
    SCOPED_TRACE(want.spec.name);
    const SparseRecord* r = db->FindSparse(want.spec.name);
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->spec, want.spec);
    EXPECT_EQ(r->rows, 5);
    EXPECT_EQ(r->slot_defs, want.slot_defs);
    StatusOr<SparseCopy> got = db->ReadSparse(want.spec.name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->rows.ids, want.rows.ids);
    EXPECT_EQ(got->rows.values, want.rows.values);
    EXPECT_EQ(got->rows.slots, want.rows.slots);
  }
  EXPECT_EQ(db->FindSparse("emb/u"), nullptr);
  EXPECT_EQ(db->ReadSparse("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(SnapshotStoreTest, ACorruptSparseChunkIsDataLossNamingTheTable) {
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 1, MakeShards(), {MakeSparse()}).ok());
  Tamper(DbPath(), [](rocksdb::DB* db) {
    std::string value;
    ASSERT_TRUE(db->Get({}, "sdata/emb/user/0003/00000000", &value).ok());
    value[1] ^= 0x01;
    ASSERT_TRUE(db->Put({}, "sdata/emb/user/0003/00000000", value).ok());
  });
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  ExpectDataLoss(db->ReadSparse("emb/user").status(), {"emb/user", "part 3", "checksum"});
}

TEST_F(SnapshotStoreTest, SparseRowsThatAreNotSortedOrDoNotMatchTheirIdsAreRefused) {
  SparseCopy unsorted = MakeSparse();
  std::swap(unsorted.rows.ids[0], unsorted.rows.ids[1]);
  EXPECT_EQ(WriteServerSnapshot(DbPath("a.db"), 1, {}, {unsorted}).code(), StatusCode::kInvalidArgument);
  SparseCopy short_slot = MakeSparse();
  short_slot.rows.slots[2].pop_back();
  EXPECT_EQ(WriteServerSnapshot(DbPath("b.db"), 1, {}, {short_slot}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteServerSnapshot(DbPath("c.db"), 1, {}, {MakeSparse(), MakeSparse()}).code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SnapshotStoreTest, BadReadsAreRefused) {
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 1, MakeShards()).ok());
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  std::vector<char> out(1024);
  EXPECT_EQ(db->ReadRows("nope", 0, 0, 1, out.data(), 4).code(), StatusCode::kNotFound);
  EXPECT_EQ(db->ReadRows("layer1/w", 4, 2, 3, out.data(), 28).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(db->ReadRows("layer1/w", -1, 2, 3, out.data(), 28).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(db->ReadRows("layer1/w", 0, 1, 3, out.data(), 56).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(db->ReadRows("layer1/w", 0, 8, 10, out.data(), 56).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(db->ReadRows("layer1/w", 0, 4, 3, out.data(), 0).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(db->ReadRows("layer1/w", 0, 2, 4, out.data(), 28).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->ReadRows("layer1/w", 3, 2, 3, out.data(), 4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(db->ReadRows("counts", 0, 0, 1, out.data(), 12).code(), StatusCode::kInvalidArgument);  // int64 rows: 24
  EXPECT_EQ(db->ReadPart("layer1/w", 4).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(db->ReadPart("nope", 0).status().code(), StatusCode::kNotFound);
}

TEST_F(SnapshotStoreTest, CopiesThatDoNotMatchTheirSpecAreRefused) {
  std::vector<ShardCopy> shards = MakeShards();
  shards[0].slots[0] = Tensor(DType::kFloat32, {7, 6});
  EXPECT_EQ(WriteServerSnapshot(DbPath("a.db"), 1, shards).code(), StatusCode::kInvalidArgument);
  shards = MakeShards();
  shards[1].values = Tensor(DType::kFloat32, {5, 3});
  EXPECT_EQ(WriteServerSnapshot(DbPath("b.db"), 1, shards).code(), StatusCode::kInvalidArgument);
  shards = MakeShards();
  shards[0].slots.pop_back();
  EXPECT_EQ(WriteServerSnapshot(DbPath("c.db"), 1, shards).code(), StatusCode::kInvalidArgument);
  shards = MakeShards();
  shards.push_back(shards[1]);
  EXPECT_EQ(WriteServerSnapshot(DbPath("d.db"), 1, shards).code(), StatusCode::kInvalidArgument);
  shards = MakeShards();
  shards[2].info.spec.name = std::string(300, 'x');  // would not load again
  EXPECT_EQ(WriteServerSnapshot(DbPath("e.db"), 1, shards).code(), StatusCode::kInvalidArgument);
  SnapshotWriteOptions zero;
  zero.chunk_bytes = 0;
  EXPECT_EQ(WriteServerSnapshot(DbPath("f.db"), 1, MakeShards(), zero).code(), StatusCode::kInvalidArgument);
}

TEST_F(SnapshotStoreTest, AnExistingPathIsAlreadyExists) {
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 1, MakeShards()).ok());
  EXPECT_EQ(WriteServerSnapshot(DbPath(), 2, MakeShards()).code(), StatusCode::kAlreadyExists);
  std::filesystem::create_directory(DbPath("empty.db"));
  EXPECT_EQ(WriteServerSnapshot(DbPath("empty.db"), 2, MakeShards()).code(), StatusCode::kAlreadyExists);
  std::unique_ptr<SnapshotDb> db = OpenOk(DbPath());
  ASSERT_TRUE(db);
  EXPECT_EQ(db->step(), 1);
}

TEST_F(SnapshotStoreTest, AMissingParentOrDatabaseIsNotFound) {
  EXPECT_EQ(WriteServerSnapshot(DbPath("no/such.db"), 1, MakeShards()).code(), StatusCode::kNotFound);
  EXPECT_EQ(OpenSnapshotDb(DbPath("missing.db")).status().code(), StatusCode::kNotFound);
}

TEST_F(SnapshotStoreTest, ADirectoryThatIsNoDatabaseIsDataLoss) {
  std::filesystem::create_directory(DbPath());
  ExpectDataLoss(OpenSnapshotDb(DbPath()).status(), {DbPath()});
}

TEST_F(SnapshotStoreTest, ADatabaseWithoutDoneIsIncomplete) {
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 1, MakeShards()).ok());
  Tamper(DbPath(), [](rocksdb::DB* db) { ASSERT_TRUE(db->Delete({}, "done").ok()); });
  ExpectDataLoss(OpenSnapshotDb(DbPath()).status(), {DbPath(), "done"});
}

TEST_F(SnapshotStoreTest, RecordsThatDoNotAgreeAreDataLoss) {
  ASSERT_TRUE(WriteServerSnapshot(DbPath(), 1, MakeShards()).ok());
  std::string done;
  Tamper(DbPath(), [&](rocksdb::DB* db) { ASSERT_TRUE(db->Get({}, "done", &done).ok()); });
  ASSERT_GE(done.size(), 8u);

  std::string other_step = done;
  other_step[0] ^= 1;  // the step: the first field, little-endian
  Tamper(DbPath(), [&](rocksdb::DB* db) { ASSERT_TRUE(db->Put({}, "done", other_step).ok()); });
  ExpectDataLoss(OpenSnapshotDb(DbPath()).status(), {DbPath(), "step"});

  Tamper(DbPath(), [&](rocksdb::DB* db) { ASSERT_TRUE(db->Put({}, "done", done.substr(0, 5)).ok()); });
  ExpectDataLoss(OpenSnapshotDb(DbPath()).status(), {DbPath()});

  Tamper(DbPath(), [&](rocksdb::DB* db) {
    ASSERT_TRUE(db->Put({}, "done", done).ok());
    ASSERT_TRUE(db->Delete({}, "meta/lr").ok());
  });
  ExpectDataLoss(OpenSnapshotDb(DbPath()).status(), {DbPath()});

  Tamper(DbPath(), [&](rocksdb::DB* db) { ASSERT_TRUE(db->Put({}, "meta/lr", std::string(40, '\xff')).ok()); });
  ExpectDataLoss(OpenSnapshotDb(DbPath()).status(), {DbPath(), "lr"});
}

// Writes layer1/w in 20-byte chunks, changes one chunk with `change`, and
// expects reads that touch it to fail naming the shard and part.
void ExpectChunkDamageDetected(const std::string& path, const std::function<void(rocksdb::DB*)>& change) {
  FaultFileSystem no_sync;  // durability is not what these tests check
  no_sync.SkipSyncs(true);
  SnapshotWriteOptions options;
  options.chunk_bytes = 20;
  options.env.fs = &no_sync;
  ASSERT_TRUE(WriteServerSnapshot(path, 1, MakeShards(), options).ok());
  Tamper(path, change);
  std::unique_ptr<SnapshotDb> db = OpenOk(path);
  ASSERT_TRUE(db);
  ExpectDataLoss(db->ReadPart("layer1/w", 1).status(), {path, "layer1/w", "part 1", "chunk 2"});
  std::vector<char> out(28);
  // Bytes [40, 60) are chunk 2: row 1 (bytes 28..56) of the shard, variable row 3, touches it.
  ExpectDataLoss(db->ReadRows("layer1/w", 1, 3, 4, out.data(), 28), {path, "layer1/w", "part 1"});
  EXPECT_TRUE(db->ReadRows("layer1/w", 1, 2, 3, out.data(), 28).ok());  // bytes [0, 28): chunks 0 and 1
  EXPECT_TRUE(db->ReadPart("layer1/w", 0).ok());
  EXPECT_TRUE(db->ReadPart("layer1/w", 2).ok());
}

TEST_F(SnapshotStoreTest, ACorruptChunkIsDataLoss) {
  ExpectChunkDamageDetected(DbPath(), [](rocksdb::DB* db) {
    std::string value;
    ASSERT_TRUE(db->Get({}, "data/layer1/w/0001/00000002", &value).ok());
    ASSERT_EQ(value.size(), 20u);
    value[7] ^= 0x10;
    ASSERT_TRUE(db->Put({}, "data/layer1/w/0001/00000002", value).ok());
  });
}

TEST_F(SnapshotStoreTest, AShortChunkIsDataLoss) {
  ExpectChunkDamageDetected(DbPath(), [](rocksdb::DB* db) {
    std::string value;
    ASSERT_TRUE(db->Get({}, "data/layer1/w/0001/00000002", &value).ok());
    ASSERT_TRUE(db->Put({}, "data/layer1/w/0001/00000002", value.substr(0, 19)).ok());
  });
}

TEST_F(SnapshotStoreTest, AMissingChunkIsDataLoss) {
  ExpectChunkDamageDetected(DbPath(), [](rocksdb::DB* db) {
    ASSERT_TRUE(db->Delete({}, "data/layer1/w/0001/00000002").ok());
  });
}

// A write error of any kind (ENOSPC, EIO, a short write, a failed sync)
// fails the snapshot with a clear error and leaves no database that opens:
// a server never acknowledges such a snapshot, so it is never committed.
void ExpectWriteFails(FaultFileSystem& fs, const std::string& path, const std::string& text) {
  SnapshotWriteOptions options;
  options.env.fs = &fs;
  Status s = WriteServerSnapshot(path, 4, MakeShards(), options);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(text), std::string::npos) << s;
  EXPECT_GE(fs.faults_fired(), 1);
  fs.Heal();
  StatusOr<std::unique_ptr<SnapshotDb>> db = OpenSnapshotDb(path);
  EXPECT_FALSE(db.ok()) << "a failed write left a database that opens";
}

TEST_F(SnapshotStoreTest, NoSpaceWhileWritingTheTableFailsTheSnapshot) {
  FaultFileSystem fs;
  fs.FailWrites({".sst", ENOSPC, 0, false});
  ExpectWriteFails(fs, DbPath(), "No space left on device");
}

TEST_F(SnapshotStoreTest, AShortWriteWithAnIoErrorFailsTheSnapshot) {
  FaultFileSystem fs;
  fs.FailWrites({".sst", EIO, 0, true});
  ExpectWriteFails(fs, DbPath(), "Input/output error");
}

TEST_F(SnapshotStoreTest, AFailedFsyncFailsTheSnapshot) {
  FaultFileSystem fs;
  fs.FailSyncs({"", EIO, 0, false});
  ExpectWriteFails(fs, DbPath(), "cannot sync");
}

TEST_F(SnapshotStoreTest, AFailedSyncOfTheDoneRecordFailsTheSnapshot) {
  // The data table syncs first; every later sync (the WAL holding "done",
  // the directories) fails.
  FaultFileSystem fs;
  fs.FailSyncs({"", EIO, 1, false});
  SnapshotWriteOptions options;
  options.env.fs = &fs;
  Status s = WriteServerSnapshot(DbPath(), 4, MakeShards(), options);
  EXPECT_FALSE(s.ok());
  EXPECT_GE(fs.faults_fired(), 1);
}

}  // namespace
}  // namespace cairn
