// Test helper: a small fixed classification problem, 3 classes in 8
// features, for training tests that need a real (separable, noisy) signal.
#pragma once

#include <cstdint>
#include <random>

#include "worker/dataset.h"

namespace cairn::testing {

// `examples` examples; example i has label i % 3 and features drawn from
// N(0, 1), shifted by 1.5 on the features j with j % 3 == label.
inline Dataset ToyClassification(int64_t examples, uint64_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0, 1);
  Dataset d;
  d.examples = examples;
  d.features = 8;
  for (int64_t i = 0; i < examples; ++i) {
    const int64_t label = i % 3;
    for (int j = 0; j < 8; ++j) d.x.push_back(normal(rng) + (j % 3 == label ? 1.5f : 0.0f));
    d.labels.push_back(label);
  }
  return d;
}

}  // namespace cairn::testing
