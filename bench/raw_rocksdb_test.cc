#include "bench/raw_rocksdb.h"

#include <stdlib.h>

#include <filesystem>

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(RawRocksDb, BaselineMeasuresWritesAndReads) {
  std::string dir = ::testing::TempDir() + "/raw_rocksdb_test.XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  const std::string path = dir + "/raw.db";
  SnapshotIoStats write, read;
  ASSERT_TRUE(MeasureRawRocksDb(path, (1 << 20) + 3, 64 << 10, &write, &read).ok());
  EXPECT_EQ(write.bytes, (1u << 20) + 3);
  EXPECT_EQ(read.bytes, (1u << 20) + 3);
  EXPECT_GT(write.seconds, 0);
  EXPECT_GT(read.seconds, 0);
  EXPECT_EQ(MeasureRawRocksDb(path, 1 << 20, 64 << 10, &write, &read).code(), StatusCode::kAlreadyExists);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cairn
