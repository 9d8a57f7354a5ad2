#include "bench/latency_histogram.h"

#include <algorithm>
#include <cmath>

namespace cairn {
namespace {

const double kLogGrowth = std::log(1.02);

// Bucket 0 holds [0, 1) us; bucket i >= 1 holds [1.02^(i-1), 1.02^i).
int BucketOf(double us, int buckets) {
  if (!(us >= 1.0)) return 0;
  return std::min(buckets - 1, 1 + static_cast<int>(std::log(us) / kLogGrowth));
}

double UpperEdge(int bucket) { return bucket == 0 ? 1.0 : std::exp(kLogGrowth * bucket); }

}  // namespace

void LatencyHistogram::Add(double us) {
  ++buckets_[BucketOf(us, kBuckets)];
  ++count_;
  sum_us_ += us;
  max_us_ = std::max(max_us_, us);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_us_ += other.sum_us_;
  max_us_ = std::max(max_us_, other.max_us_);
}

double LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0.0;
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(max_us_, UpperEdge(i));
  }
  return max_us_;
}

}  // namespace cairn
