// The parts of worker/trainer.h that need no store: the learning-rate
// schedules. Trainer runs are in tests/trainer_test.cc (over the servers'
// ShardStore in this process).
#include "worker/trainer.h"

#include <cmath>
#include <cstdint>

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(LearningRateSchedule, ConstantIsTheBaseRateAtEveryStep) {
  LearningRateSchedule s;
  s.kind = "constant";
  s.base = 0.1;
  for (int64_t step : {0, 1, 999, 1000, 123456}) EXPECT_DOUBLE_EQ(s.Rate(step), 0.1) << step;
}

TEST(LearningRateSchedule, StepDecaysByTheRateEveryDecaySteps) {
  LearningRateSchedule s;
  s.kind = "step";
  s.base = 0.1;
  s.decay_rate = 0.5;
  s.decay_steps = 1000;
  EXPECT_DOUBLE_EQ(s.Rate(0), 0.1);
  EXPECT_DOUBLE_EQ(s.Rate(999), 0.1);
  EXPECT_DOUBLE_EQ(s.Rate(1000), 0.05);
  EXPECT_DOUBLE_EQ(s.Rate(1999), 0.05);
  EXPECT_DOUBLE_EQ(s.Rate(2500), 0.025);
  EXPECT_DOUBLE_EQ(s.Rate(10000), 0.1 * std::pow(0.5, 10));
}

TEST(LearningRateSchedule, ExponentialDecaysSmoothly) {
  LearningRateSchedule s;
  s.kind = "exponential";
  s.base = 0.2;
  s.decay_rate = 0.1;
  s.decay_steps = 100;
  EXPECT_DOUBLE_EQ(s.Rate(0), 0.2);
  EXPECT_NEAR(s.Rate(50), 0.2 * std::sqrt(0.1), 1e-12);
  EXPECT_NEAR(s.Rate(100), 0.02, 1e-12);
  EXPECT_NEAR(s.Rate(250), 0.2 * std::pow(0.1, 2.5), 1e-12);
  EXPECT_GT(s.Rate(1), s.Rate(2));  // strictly decreasing, unlike "step"
}

TEST(LearningRateSchedule, ZeroDecayStepsDoesNotDivideByZero) {
  LearningRateSchedule s;
  s.kind = "step";
  s.base = 1.0;
  s.decay_rate = 0.5;
  s.decay_steps = 0;
  EXPECT_DOUBLE_EQ(s.Rate(3), 0.125);
  s.kind = "exponential";
  EXPECT_TRUE(std::isfinite(s.Rate(3)));
}

}  // namespace
}  // namespace cairn
