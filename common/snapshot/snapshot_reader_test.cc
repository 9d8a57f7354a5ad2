#include "common/snapshot/snapshot_reader.h"

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <numeric>

#include <gtest/gtest.h>

#include "common/snapshot/model_dir.h"

namespace cairn {
namespace {

constexpr int64_t kStep = 12;

// A [10, 3] float32 variable with an Adam-like per-element slot "m" and a
// scalar slot "beta1_power", split as rows [0, 4) on server 0 and [4, 10) on
// server 1, every value distinct: element e of part p is p * 1000 + e.
class SnapshotReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/snapshot_reader_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern + "/model";
    ASSERT_TRUE(PrepareModelDir(dir_).ok());
    ASSERT_TRUE(std::filesystem::create_directories(SnapshotDirPath(dir_, kStep)));
    root_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  static VariableSpec Spec() {
    VariableSpec spec;
    spec.name = "w";
    spec.shape = {10, 3};
    spec.trainable = true;
    return spec;
  }

  static ShardCopy Shard(int64_t begin, int64_t end) {
    ShardCopy c;
    c.info = ShardInfo{Spec(), begin, end};
    c.optimizer.kind = "adam";
    c.slot_defs = {{"m", false, 0.0f}, {"beta1_power", true, 0.9f}};
    c.values = Tensor(DType::kFloat32, c.info.shape());
    Tensor m(DType::kFloat32, c.info.shape());
    for (int64_t i = 0; i < c.values.num_elements(); ++i) {
      c.values.data<float>()[i] = static_cast<float>(begin * 3 + i);
      m.data<float>()[i] = static_cast<float>(1000 + begin * 3 + i);
    }
    Tensor beta(DType::kFloat32, {1});
    beta.data<float>()[0] = 0.81f;
    c.slots = {std::move(m), std::move(beta)};
    return c;
  }

  // Writes both servers' databases and commits `shards` as the manifest's
  // placement.
  void Commit(std::vector<ManifestShard> shards, int num_servers = 2) {
    ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(dir_, kStep, 0), kStep, {Shard(0, 4)}).ok());
    ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(dir_, kStep, 1), kStep, {Shard(4, 10)}).ok());
    SnapshotManifest m;
    m.step = m.global_step = kStep;
    m.num_servers = num_servers;
    m.variables = {ManifestVariable{Spec(), "Adam", {"m", "beta1_power"}, {false, true}}};
    m.shards = std::move(shards);
    ASSERT_TRUE(CommitManifest(dir_, m).ok());
  }

  std::string root_, dir_;
};

TEST_F(SnapshotReaderTest, GathersRowsAcrossServersInAnyRange) {
  Commit({{"w", 0, 4, 0}, {"w", 4, 10, 1}});
  auto reader = SnapshotReader::Open(dir_, kStep);
  ASSERT_TRUE(reader.ok()) << reader.status();
  for (int part = 0; part <= 1; ++part) {
    for (int64_t b = 0; b <= 10; ++b) {
      for (int64_t e = b; e <= 10; ++e) {
        std::vector<float> out((e - b) * 3);
        ASSERT_TRUE((*reader)->ReadRows("w", part, b, e, out.data(), out.size() * sizeof(float)).ok());
        for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], part * 1000 + b * 3 + static_cast<float>(i));
      }
    }
  }
  StatusOr<Tensor> beta = (*reader)->ReadPart("w", 2);
  ASSERT_TRUE(beta.ok()) << beta.status();
  EXPECT_EQ(beta->shape(), Shape{1});
  EXPECT_EQ(beta->data<float>()[0], 0.81f);
}

TEST_F(SnapshotReaderTest, OpensTheNewestCommitByDefault) {
  Commit({{"w", 0, 4, 0}, {"w", 4, 10, 1}});
  auto reader = SnapshotReader::Open(dir_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->step(), kStep);
}

void ExpectDataLoss(const std::string& dir, const std::string& text) {
  auto reader = SnapshotReader::Open(dir, kStep);
  Status s = reader.ok() ? (*reader)->ReadPart("w", 0).status() : reader.status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find(text), std::string::npos) << s;
}

TEST_F(SnapshotReaderTest, ARowInNoShardIsDataLoss) {
  Commit({{"w", 0, 4, 0}, {"w", 5, 10, 1}});
  ExpectDataLoss(dir_, "rows [4, 5) of 'w' are in no shard");
}

TEST_F(SnapshotReaderTest, ARowInTwoShardsIsDataLoss) {
  Commit({{"w", 0, 5, 0}, {"w", 4, 10, 1}});
  ExpectDataLoss(dir_, "in more than one shard");
}

TEST_F(SnapshotReaderTest, AServerOutsideTheSnapshotIsDataLoss) {
  Commit({{"w", 0, 4, 0}, {"w", 4, 10, 2}});
  ExpectDataLoss(dir_, "names server 2 of a snapshot of 2 servers");
}

TEST_F(SnapshotReaderTest, ADatabaseHoldingOtherRowsThanTheManifestSaysIsDataLoss) {
  Commit({{"w", 0, 6, 0}, {"w", 6, 10, 1}});
  ExpectDataLoss(dir_, "server 0's database holds rows [0, 4)");
}

TEST_F(SnapshotReaderTest, ADatabaseOfAnotherStepIsDataLoss) {
  Commit({{"w", 0, 4, 0}, {"w", 4, 10, 1}});
  std::filesystem::remove_all(ServerDbPath(dir_, kStep, 1));
  ASSERT_TRUE(WriteServerSnapshot(ServerDbPath(dir_, kStep, 1), kStep + 1, {Shard(4, 10)}).ok());
  ExpectDataLoss(dir_, "holds step 13, not 12");
}

TEST_F(SnapshotReaderTest, AnUncommittedStepSaysSo) {
  ASSERT_TRUE(std::filesystem::create_directories(SnapshotDirPath(dir_, 20)));
  auto reader = SnapshotReader::Open(dir_, 20);
  EXPECT_EQ(reader.status().code(), StatusCode::kFailedPrecondition) << reader.status();
  EXPECT_NE(reader.status().message().find("not committed"), std::string::npos);
}

}  // namespace
}  // namespace cairn
