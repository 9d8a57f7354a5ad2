// Zipf-distributed ranks over a vocabulary too large to tabulate.
//
// Hörmann and Derflinger's rejection-inversion ("Rejection-inversion to
// generate variates from monotone discrete distributions", ACM TOMACS 6(3),
// 1996), as in Apache Commons RNG's RejectionInversionZipfSampler: O(1)
// memory and time per draw whatever n is (10^8 costs what 10 does), about
// 1.1 uniforms per draw. The most frequent ranks, which most draws hit, come
// from a small table instead, which saves the transcendental functions for
// the tail.
#pragma once

#include <array>
#include <cstdint>

namespace cairn {

class ZipfSampler {
 public:
  // Ranks 1..n with P(k) proportional to k^-exponent. Preconditions: n >= 1,
  // exponent > 0.
  ZipfSampler(int64_t n, double exponent);

  int64_t n() const { return n_; }
  // P(rank == k), for tests: (k^-exponent) / H(n, exponent).
  double Probability(int64_t k) const;

  // A rank in [1, n]. `uniform()` must return doubles uniform in [0, 1); it
  // is called once per draw, more on a rejection.
  template <typename Uniform>
  int64_t Sample(Uniform&& uniform) const {
    const double u = uniform();
    if (u < head_mass_) return HeadRank(u);
    for (double v = (u - head_mass_) / (1 - head_mass_);; v = uniform()) {
      int64_t k;
      if (TryTail(v, &k)) return k;
    }
  }

 private:
  static constexpr int kHead = 32;  // ranks tabulated

  int64_t HeadRank(double u) const;
  // One rejection-inversion trial over ranks (head_, n], from v in [0, 1).
  bool TryTail(double v, int64_t* k) const;
  double H(double x) const;         // integral of x^-exponent, shifted so H(1) = 0
  double HInverse(double x) const;
  double h(double x) const;         // x^-exponent

  int64_t n_;
  double exponent_;
  int64_t head_;                       // min(n, kHead)
  std::array<double, kHead> head_cdf_{};  // P(rank <= k + 1), k < head_
  double head_mass_ = 0;               // P(rank <= head_)
  double tail_lo_ = 0, tail_hi_ = 0;   // H over the tail's span
  double s_ = 0;                       // the squeeze: accept at once when k - x <= s_
  double normalizer_ = 0;              // H(n, exponent) = sum of k^-exponent
};

}  // namespace cairn
