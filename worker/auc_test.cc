#include "worker/auc.h"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(Auc, SeparatedScoresGiveOneAndReversedZero) {
  const std::vector<float> labels = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f}, labels), 1.0);
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{0.4f, 0.3f, 0.2f, 0.1f}, labels), 0.0);
}

TEST(Auc, TiesCountOneHalf) {
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{5, 5, 5, 5}, std::vector<float>{0, 1, 0, 1}), 0.5);
  // Positives 0.8 and 0.5; negatives 0.5, 0.2, 0.9. Pairs won: 0.8 beats
  // 0.5 and 0.2 (2), 0.5 ties 0.5 (0.5) and beats 0.2 (1): 3.5 of 6.
  EXPECT_DOUBLE_EQ(Auc(std::vector<float>{0.8f, 0.5f, 0.5f, 0.2f, 0.9f}, std::vector<float>{1, 1, 0, 0, 0}),
                   3.5 / 6);
}

TEST(Auc, IsNanWithoutBothClasses) {
  EXPECT_TRUE(std::isnan(Auc(std::vector<float>{1, 2}, std::vector<float>{1, 1})));
  EXPECT_TRUE(std::isnan(Auc(std::vector<float>{}, std::vector<float>{})));
}

}  // namespace
}  // namespace cairn
