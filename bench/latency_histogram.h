// LatencyHistogram: call latencies in a fixed amount of memory.
//
// The load bench runs for minutes and samples the resident set of the
// process the server lives in: a vector of every latency would grow it by
// itself. Buckets are 2% wide (log-spaced from 1 us up to ~10^4 s), so a
// percentile is known to within 2%; the count, sum and maximum are exact.
// Not thread-safe: one writer, or merge copies.
#pragma once

#include <array>
#include <cstdint>

namespace cairn {

class LatencyHistogram {
 public:
  void Add(double us);
  void Merge(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  double max_us() const { return max_us_; }
  double mean_us() const { return count_ > 0 ? sum_us_ / static_cast<double>(count_) : 0.0; }
  // Nearest-rank percentile, as the upper edge of its bucket (never above
  // the maximum); 0 when empty.
  double Percentile(double p) const;
  double p50_us() const { return Percentile(0.50); }
  double p99_us() const { return Percentile(0.99); }

 private:
  static constexpr int kBuckets = 1200;  // 1.02^1199 us is ~ 2e10 us
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  double sum_us_ = 0;
  double max_us_ = 0;
};

}  // namespace cairn
