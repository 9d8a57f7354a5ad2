// SnapshotWriter::PrepareBuffersAhead: the first snapshot's copy buffers,
// allocated and touched before it is due.
#include "ps/snapshot_writer.h"

#include <set>

#include <gtest/gtest.h>

#include "ps/copy_pool.h"
#include "ps/shard_store.h"
#include "ps/snapshot_fence.h"

namespace cairn {
namespace {

VariableSpec Spec(const std::string& name, Shape shape) {
  VariableSpec s{name, std::move(shape), DType::kFloat32, {}, true};
  s.init.kind = InitKind::kOnes;
  return s;
}

OptimizerSpec Optimizer(const std::string& kind) {
  OptimizerSpec o;
  o.kind = kind;
  o.learning_rate = 0.1;
  return o;
}

// Two shards, one with Adam's slots.
void Declare(ShardStore* store) {
  ASSERT_TRUE(store->Create(ShardDecl{Spec("a", {1000, 16}), 0, 1000, Optimizer("adam")}).ok());
  ASSERT_TRUE(store->Create(ShardDecl{Spec("b", {10}), 0, 10, Optimizer("sgd")}).ok());
}

uint64_t Bytes(const std::vector<ShardCopy>& copies) {
  uint64_t n = 0;
  for (const ShardCopy& c : copies) {
    n += c.values.byte_size();
    for (const Tensor& s : c.slots) n += s.byte_size();
  }
  return n;
}

SnapshotWriterOptions WithModelDir(const std::string& dir) {
  SnapshotWriterOptions o;
  o.model_dir = dir;
  return o;
}

TEST(SnapshotWriterAhead, FillsThePoolWithCopiesOfEveryShardThatTheFirstExportReuses) {
  ShardStore store;
  Declare(&store);
  CopyPool pool(/*keep=*/true);
  SnapshotFence fence;
  SnapshotWriter writer(store, pool, fence, WithModelDir("/nonexistent/model"));
  writer.PrepareBuffersAhead();
  writer.Stop();  // joins the thread that prepares them
  const uint64_t want = Bytes(store.Export({}));  // every shard's values and slots
  EXPECT_GT(want, 1000u * 16 * 4 * 3 - 1);      // a's values, m and v at least
  EXPECT_EQ(writer.buffers_prepared_bytes(), want);
  std::vector<ShardCopy> prepared = pool.Take();
  EXPECT_EQ(Bytes(prepared), want);
  std::set<const void*> buffers;
  for (const ShardCopy& c : prepared) {
    buffers.insert(c.values.raw());
    for (const Tensor& s : c.slots) buffers.insert(s.raw());
  }
  // The first snapshot's cut copies into exactly those buffers.
  ExportOptions cut;
  cut.reuse = std::move(prepared);
  const std::vector<ShardCopy> first = store.Export({}, std::move(cut));
  ASSERT_EQ(Bytes(first), want);
  for (const ShardCopy& c : first) {
    EXPECT_TRUE(buffers.count(c.values.raw())) << c.info.spec.name;
    for (const Tensor& s : c.slots) EXPECT_TRUE(buffers.count(s.raw())) << c.info.spec.name << " slot";
  }
  // And it holds the shards' values, not the zeros the buffers were touched with.
  for (const ShardCopy& c : first) EXPECT_EQ(c.values.data<float>()[0], 1.0f) << c.info.spec.name;
}

TEST(SnapshotWriterAhead, DoesNothingWithoutAModelDirectoryOrAPoolThatKeeps) {
  ShardStore store;
  Declare(&store);
  SnapshotFence fence;
  {
    CopyPool pool(/*keep=*/true);
    SnapshotWriter writer(store, pool, fence, WithModelDir(""));
    writer.PrepareBuffersAhead();
    writer.Stop();
    EXPECT_TRUE(pool.Take().empty());
    EXPECT_EQ(writer.buffers_prepared_bytes(), 0u);
  }
  {
    CopyPool pool(/*keep=*/false);
    SnapshotWriter writer(store, pool, fence, WithModelDir("/nonexistent/model"));
    writer.PrepareBuffersAhead();
    writer.Stop();
    EXPECT_EQ(writer.buffers_prepared_bytes(), 0u);
  }
  {
    CopyPool pool(/*keep=*/true);
    SnapshotWriter writer(store, pool, fence, WithModelDir("/nonexistent/model"));
    writer.Stop();
    writer.PrepareBuffersAhead();  // after Stop: nothing starts
    writer.Stop();
    EXPECT_TRUE(pool.Take().empty());
  }
}

}  // namespace
}  // namespace cairn
