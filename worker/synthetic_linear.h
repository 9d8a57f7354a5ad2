// Synthetic linear-regression data with a known answer:
// y = x·w* + b* + noise, x ~ N(0, 1), w* ~ N(0, 1), b* ~ N(0, 1).
#pragma once

#include <cstdint>
#include <vector>

#include "worker/dataset.h"

namespace cairn {

struct SyntheticLinearOptions {
  int64_t examples = 100000;
  int64_t features = 1000;
  double noise_stddev = 0.01;
  uint64_t seed = 7;
};

// The true parameters: a pure function of (features, seed).
struct LinearTruth {
  std::vector<float> w;
  float b = 0;
};
LinearTruth MakeLinearTruth(const SyntheticLinearOptions& options);

// Every example, identical in every process for the same options.
Dataset MakeLinearDataset(const SyntheticLinearOptions& options, const LinearTruth& truth);

}  // namespace cairn
