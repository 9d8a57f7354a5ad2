#include "worker/zipf_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

// A fixed stream of uniforms in [0, 1).
class Uniforms {
 public:
  explicit Uniforms(uint64_t seed) : state_(seed) {}
  double operator()() {
    uint64_t z = state_ += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }

 private:
  uint64_t state_;
};

// Draws `draws` ranks and checks each k <= `check` (head and tail ranks
// both) and the mass above it against Probability, within 5 standard errors.
void ExpectFrequenciesMatch(int64_t n, double exponent, int64_t check, int draws) {
  ZipfSampler zipf(n, exponent);
  Uniforms uniform(n * 31 + 7);
  std::vector<int64_t> seen(check + 2, 0);
  for (int i = 0; i < draws; ++i) {
    const int64_t k = zipf.Sample(uniform);
    ASSERT_GE(k, 1);
    ASSERT_LE(k, n);
    ++seen[std::min(k, check + 1)];
  }
  double above = 1;
  for (int64_t k = 1; k <= check; ++k) {
    const double p = zipf.Probability(k);
    above -= p;
    EXPECT_NEAR(static_cast<double>(seen[k]) / draws, p, 5 * std::sqrt(p * (1 - p) / draws) + 1e-9)
        << "rank " << k << " of " << n << ", exponent " << exponent;
  }
  above = std::max(0.0, above);
  EXPECT_NEAR(static_cast<double>(seen[check + 1]) / draws, above, 5 * std::sqrt(above * (1 - above) / draws) + 1e-9)
      << "ranks above " << check;
}

TEST(ZipfSampler, HeadAndTailRanksComeAtTheirProbabilities) {
  ExpectFrequenciesMatch(1000, 1.1, 80, 400000);
}

TEST(ZipfSampler, ExponentOneAndSteepExponentsWork) {
  ExpectFrequenciesMatch(100000, 1.0, 60, 200000);
  ExpectFrequenciesMatch(500, 2.5, 40, 200000);
  ExpectFrequenciesMatch(500, 0.5, 40, 200000);
}

TEST(ZipfSampler, VocabulariesNoLargerThanTheTableNeverTouchTheTail) {
  for (int64_t n : {1, 2, 10, 32}) ExpectFrequenciesMatch(n, 1.1, n, 100000);
  ExpectFrequenciesMatch(33, 1.1, 33, 100000);
}

TEST(ZipfSampler, ProbabilitiesSumToOne) {
  for (int64_t n : {1, 1000, 1024, 1025, 50000}) {
    ZipfSampler zipf(n, 1.1);
    double sum = 0;
    for (int64_t k = 1; k <= n; ++k) sum += zipf.Probability(k);
    EXPECT_NEAR(sum, 1, 1e-12) << n;
  }
}

TEST(ZipfSampler, AHundredMillionRanksAreSampledWithoutATable) {
  constexpr int64_t n = 100000000;
  ZipfSampler zipf(n, 1.1);
  Uniforms uniform(3);
  constexpr int kDraws = 200000;
  int above_ten_million = 0, first = 0;
  for (int i = 0; i < kDraws; ++i) {
    const int64_t k = zipf.Sample(uniform);
    ASSERT_GE(k, 1);
    ASSERT_LE(k, n);
    above_ten_million += k > 10000000;
    first += k == 1;
  }
  // P(k > 10^7) = (integral of x^-1.1 over [10^7, 10^8]) / H(10^8) = 0.41 / 9.0, to within 1%.
  const double tail = (std::pow(1e7, -0.1) - std::pow(1e8, -0.1)) / 0.1 * zipf.Probability(1);
  EXPECT_NEAR(static_cast<double>(above_ten_million) / kDraws, tail, 0.003);
  EXPECT_NEAR(static_cast<double>(first) / kDraws, zipf.Probability(1), 0.004);
  EXPECT_NEAR(zipf.Probability(1), 1 / 9.0, 0.002);
}

}  // namespace
}  // namespace cairn
