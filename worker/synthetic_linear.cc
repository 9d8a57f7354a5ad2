#include "worker/synthetic_linear.h"

#include <random>

namespace cairn {

LinearTruth MakeLinearTruth(const SyntheticLinearOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LinearTruth t;
  t.w.resize(o.features);
  for (float& w : t.w) w = normal(rng);
  t.b = normal(rng);
  return t;
}

Dataset MakeLinearDataset(const SyntheticLinearOptions& o, const LinearTruth& truth) {
  std::mt19937_64 rng(o.seed * 1000003ULL + 17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Dataset d;
  d.examples = o.examples;
  d.features = o.features;
  d.x.resize(o.examples * o.features);
  d.targets.resize(o.examples);
  for (int64_t i = 0; i < o.examples; ++i) {
    float* row = d.x.data() + i * o.features;
    double y = truth.b;
    for (int64_t j = 0; j < o.features; ++j) {
      row[j] = normal(rng);
      y += static_cast<double>(row[j]) * truth.w[j];
    }
    d.targets[i] = static_cast<float>(y + o.noise_stddev * normal(rng));
  }
  return d;
}

}  // namespace cairn
