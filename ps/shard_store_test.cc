#include "ps/shard_store.h"

#include <thread>

#include <gtest/gtest.h>

namespace cairn {
namespace {

VariableSpec Spec(const std::string& name, Shape shape, InitKind kind = InitKind::kZeros, bool trainable = true) {
  VariableSpec s{name, std::move(shape), DType::kFloat32, {}, trainable};
  s.init.kind = kind;
  s.init.value = 2.0;
  s.init.seed = 3;
  return s;
}

OptimizerSpec Sgd(double lr) {
  OptimizerSpec o;
  o.learning_rate = lr;
  return o;
}

TEST(ShardStore, CreatedShardHoldsItsRowsOfTheInitialValues) {
  ShardStore store;
  VariableSpec spec = Spec("w", {6, 2}, InitKind::kGlorotUniform);
  ASSERT_TRUE(store.Create(ShardDecl{spec, 2, 5, Sgd(0.1)}).ok());
  ShardInfo info;
  StatusOr<Tensor> t = store.Read("w", &info);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->shape(), (Shape{3, 2}));
  Tensor whole(DType::kFloat32, {6, 2});
  InitializeRows(spec, 0, &whole);
  EXPECT_TRUE(t->BitEqual(whole.SliceRows(2, 5).Clone()));
  EXPECT_EQ(info.row_begin, 2);
}

TEST(ShardStore, CreatingTheSameShardTwiceKeepsItsValues) {
  ShardStore store;
  VariableSpec spec = Spec("w", {4}, InitKind::kConstant);
  ASSERT_TRUE(store.Create(ShardDecl{spec, 0, 4, Sgd(1.0)}).ok());
  ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({4}, {1, 1, 1, 1})).ok());
  ASSERT_TRUE(store.Create(ShardDecl{spec, 0, 4, Sgd(1.0)}).ok());
  EXPECT_FLOAT_EQ(store.Read("w")->data<float>()[0], 1.0f);
  EXPECT_EQ(store.size(), 1u);
}

TEST(ShardStore, ConflictingSpecIsAnErrorNamingBoth) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {4}), 0, 4, Sgd(0.1)}).ok());
  Status s = store.Create(ShardDecl{Spec("w", {5}), 0, 5, Sgd(0.1)});
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("[4]"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[5]"), std::string::npos) << s;
}

TEST(ShardStore, RowRangeOutsideTheVariableIsRejected) {
  ShardStore store;
  EXPECT_EQ(store.Create(ShardDecl{Spec("w", {4, 2}), 2, 5, Sgd(0.1)}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Create(ShardDecl{Spec("w", {4, 2}), 3, 2, Sgd(0.1)}).code(), StatusCode::kInvalidArgument);
}

TEST(ShardStore, UnknownOptimizerIsRejected) {
  ShardStore store;
  OptimizerSpec o;
  o.kind = "rmsprop-ish";
  EXPECT_EQ(store.Create(ShardDecl{Spec("w", {4}), 0, 4, o}).code(), StatusCode::kInvalidArgument);
}

TEST(ShardStore, SgdSubtractsLearningRateTimesGradient) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {3}, InitKind::kConstant), 0, 3, Sgd(0.5)}).ok());
  ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 2, -4})).ok());
  Tensor t = *store.Read("w");
  EXPECT_FLOAT_EQ(t.data<float>()[0], 1.5f);
  EXPECT_FLOAT_EQ(t.data<float>()[1], 1.0f);
  EXPECT_FLOAT_EQ(t.data<float>()[2], 4.0f);
}

TEST(ShardStore, GradientOfWrongShapeOrForNonTrainableIsRejected) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {3}), 0, 3, Sgd(0.5)}).ok());
  ASSERT_TRUE(store.Create(ShardDecl{Spec("stats", {3}, InitKind::kZeros, false), 0, 3, Sgd(0.5)}).ok());
  EXPECT_EQ(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({2}, {1, 2})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Apply("stats", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 2, 3})).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Apply("nope", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 2, 3})).code(), StatusCode::kNotFound);
}

TEST(ShardStore, ConcurrentUpdatesAreEachAppliedOnce) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {64}), 0, 64, Sgd(1.0)}).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Tensor g(DType::kFloat32, {64});
      g.flat().setConstant(1.0f);
      for (int i = 0; i < 250; ++i) ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, g).ok());
    });
  }
  for (auto& t : threads) t.join();
  Tensor w = *store.Read("w");
  for (int i = 0; i < 64; ++i) EXPECT_FLOAT_EQ(w.data<float>()[i], -1000.0f);
}

}  // namespace
}  // namespace cairn
