#include "worker/zipf_sampler.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace cairn {
namespace {

// log1p(x) / x and expm1(x) / x, continuous at 0 (the exponent-1 case).
// Away from 0 log and exp are as accurate (absolute error 1e-16 against
// |x| > 0.01) and about twice as fast as glibc's log1p and expm1.
double Log1pOverX(double x) {
  if (std::abs(x) > 0.01) return std::log(1 + x) / x;
  if (std::abs(x) > 1e-8) return std::log1p(x) / x;
  return 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x));
}

double Expm1OverX(double x) {
  if (std::abs(x) > 0.01) return (std::exp(x) - 1) / x;
  if (std::abs(x) > 1e-8) return std::expm1(x) / x;
  return 1 + x * 0.5 * (1 + x / 3 * (1 + 0.25 * x));
}

// sum of k^-e for k = 1..n: exact up to 1024 terms, then Euler-Maclaurin
// for the rest (its error there is below 1e-15 relative).
double ZipfNormalizer(int64_t n, double e) {
  constexpr int64_t kExact = 1024;
  double sum = 0;
  for (int64_t k = 1; k <= std::min(n, kExact); ++k) sum += std::pow(static_cast<double>(k), -e);
  if (n <= kExact) return sum;
  const double a = kExact + 1, b = static_cast<double>(n);
  const double integral = std::abs(e - 1) < 1e-12 ? std::log(b / a) : (std::pow(b, 1 - e) - std::pow(a, 1 - e)) / (1 - e);
  return sum + integral + (std::pow(a, -e) + std::pow(b, -e)) / 2 +
         e / 12 * (std::pow(a, -e - 1) - std::pow(b, -e - 1));
}

}  // namespace

ZipfSampler::ZipfSampler(int64_t n, double exponent)
    : n_(n), exponent_(exponent), head_(std::min<int64_t>(n, kHead)) {
  assert(n >= 1 && exponent > 0);
  normalizer_ = ZipfNormalizer(n, exponent);
  double cdf = 0;
  for (int64_t k = 0; k < head_; ++k) head_cdf_[k] = cdf += Probability(k + 1);
  if (head_ == n_) head_cdf_[head_ - 1] = 1;  // every draw is a head draw: no rounding gap into an empty tail
  head_mass_ = head_cdf_[head_ - 1];
  const double k0 = static_cast<double>(head_ + 1);  // the tail's first rank
  tail_lo_ = H(k0 + 0.5) - h(k0);
  tail_hi_ = H(static_cast<double>(n_) + 0.5);
  s_ = (k0 + 1) - HInverse(H(k0 + 1.5) - h(k0 + 1));
}

double ZipfSampler::Probability(int64_t k) const {
  if (k < 1 || k > n_) return 0;
  return std::pow(static_cast<double>(k), -exponent_) / normalizer_;
}

int64_t ZipfSampler::HeadRank(double u) const {
  int k = 0;
  while (u >= head_cdf_[k]) ++k;
  return k + 1;
}

// Ranks k > head_ own the intervals (H(k - 1/2), H(k + 1/2)] of H's range;
// a draw u there is accepted when it falls in the top h(k) of k's interval,
// so each k is accepted with weight h(k). The interval of the first rank k0
// starts exactly h(k0) below its top, so k0 is always accepted; for the
// others the squeeze k - x <= s_ accepts most draws without evaluating H.
bool ZipfSampler::TryTail(double v, int64_t* k) const {
  const double u = tail_lo_ + v * (tail_hi_ - tail_lo_);
  const double x = HInverse(u);
  *k = std::clamp(static_cast<int64_t>(x + 0.5), head_ + 1, n_);
  const double kd = static_cast<double>(*k);
  return kd - x <= s_ || u >= H(kd + 0.5) - h(kd);
}

double ZipfSampler::H(double x) const {
  const double log_x = std::log(x);
  return Expm1OverX((1 - exponent_) * log_x) * log_x;
}

double ZipfSampler::HInverse(double x) const {
  const double t = std::max(-1.0, x * (1 - exponent_));
  return std::exp(Log1pOverX(t) * x);
}

double ZipfSampler::h(double x) const { return std::exp(-exponent_ * std::log(x)); }

}  // namespace cairn
