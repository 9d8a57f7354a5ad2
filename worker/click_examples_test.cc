#include "worker/click_examples.h"

#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "worker/synthetic_clicks.h"

namespace cairn {
namespace {

TEST(ClickTableId, SlotsGetUnrelatedIdsForTheSameNumber) {
  std::set<int64_t> ids;
  for (int slot = 0; slot < kClickSlots; ++slot) {
    for (int64_t id = 0; id < 1000; ++id) {
      const int64_t t = ClickTableId(slot, id);
      EXPECT_GE(t, 0);
      ids.insert(t);
    }
  }
  EXPECT_EQ(ids.size(), size_t{kClickSlots} * 1000);
  EXPECT_EQ(ClickTableId(3, 42), ClickTableId(3, 42));
}

TEST(ClickDenseFeature, IsLogOnePlusCountWithMissingAndNegativeAsZero) {
  EXPECT_EQ(ClickDenseFeature(kMissingCount), 0.0f);
  EXPECT_EQ(ClickDenseFeature(-3), 0.0f);
  EXPECT_EQ(ClickDenseFeature(0), 0.0f);
  EXPECT_FLOAT_EQ(ClickDenseFeature(9), static_cast<float>(std::log(10.0)));
}

Model ClickInputs(Graph* g) {
  Model m;
  m.x = g->Placeholder("dense", DType::kFloat32, {-1, kClickCounts});
  m.ids = g->Placeholder("ids", DType::kInt64, {-1, kClickSlots});
  m.y = g->Placeholder("labels", DType::kFloat32, {-1});
  return m;
}

TEST(ClickExamples, FeedsTheExamplesOfTheIndicesInTheirOrder) {
  SyntheticClicksOptions o;
  o.rows = 100;
  o.test_rows = 0;
  o.cat_missing = 0.3;
  auto log = SyntheticClicks::Create(o);
  ASSERT_TRUE(log.ok()) << log.status();
  ClickBatch expected;
  ASSERT_TRUE((*log)->Gather(std::vector<int64_t>{7, 3}, &expected).ok());
  ClickExamples examples(std::move(*log));
  Graph g;
  Model m = ClickInputs(&g);
  FeedMap feeds;
  ASSERT_TRUE(examples.Feed(std::vector<int64_t>{7, 3}, m, &feeds).ok());
  const Tensor& ids = feeds.at(m.ids);
  const Tensor& dense = feeds.at(m.x);
  const Tensor& labels = feeds.at(m.y);
  ASSERT_EQ(ids.shape(), (Shape{2, kClickSlots}));
  ASSERT_EQ(dense.shape(), (Shape{2, kClickCounts}));
  ASSERT_EQ(labels.shape(), (Shape{2}));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(labels.data<float>()[r], expected.labels[r]);
    for (int s = 0; s < kClickSlots; ++s) {
      const int64_t id = expected.id(r, s);
      EXPECT_EQ(ids.data<int64_t>()[r * kClickSlots + s], id < 0 ? -1 : ClickTableId(s, id));
    }
    for (int j = 0; j < kClickCounts; ++j) {
      EXPECT_EQ(dense.data<float>()[r * kClickCounts + j], ClickDenseFeature(expected.count(r, j)));
    }
  }
  EXPECT_FALSE(examples.Feed(std::vector<int64_t>{100}, m, &feeds).ok());
}

TEST(ClickExamples, MomentsAreThoseOfTheLogCounts) {
  SyntheticClicksOptions o;
  o.rows = 3000;
  o.test_rows = 0;
  auto log = SyntheticClicks::Create(o);
  ASSERT_TRUE(log.ok()) << log.status();
  ClickBatch all;
  ASSERT_TRUE((*log)->Read(0, 3000, &all).ok());
  ClickExamples examples(std::move(*log));
  std::vector<float> mean, inv_std;
  ASSERT_TRUE(examples.Moments(&mean, &inv_std).ok());
  ASSERT_EQ(mean.size(), size_t{kClickCounts});
  double sum = 0;
  for (int64_t r = 0; r < 3000; ++r) sum += ClickDenseFeature(all.count(r, 0));
  EXPECT_NEAR(mean[0], sum / 3000, 1e-4);
  for (float v : inv_std) EXPECT_GT(v, 0);
}

}  // namespace
}  // namespace cairn
