// Click logs for sparse (embedding) models: the examples, and the interface
// every source of them implements.
//
// The contract every ClickSource keeps:
//
// - An example is a label (0 or 1), kClickCounts integer features and
//   kClickSlots categorical ids, in Criteo's order (I1..I13, C1..C26).
// - A missing integer feature is kMissingCount (INT32_MIN; real counts are
//   >= -2^31 + 1, and Criteo's are >= -3). A missing categorical id is
//   kMissingId (-1); present ids are >= 0.
// - Id spaces. Each slot has its own id space: the same number in two slots
//   is two unrelated values. SyntheticClicks (data.kind: synthetic_clicks)
//   gives slot s ids in [0, vocab[s]); CriteoTsv (data.kind: criteo_tsv)
//   gives hashed ids in [0, 2^63) (CriteoCategoryId in criteo_tsv.h). A
//   model maps ids to table rows itself (modulo, or a hash table).
// - Random access: Read(first, n) gives examples [first, first + n) of
//   [0, size()), and the same index always gives the same example, so
//   workers can shard by index and a data position (an epoch and an index)
//   resumes exactly.
// - Determinism: a SyntheticClicks example is a pure function of
//   (options without rows and test_rows, split, index), unchanged by the
//   split sizes and identical in every process of a job. (It uses libm's
//   exp and log, so another libm may round a rare draw differently.)
// - Splits: SyntheticClicks' train example i is global example i, its
//   test example i global example 2^62 + i, so the splits never overlap
//   and growing one changes neither. A CriteoTsv example i is the i-th
//   well-formed line of its files in order (skipped lines take no index);
//   its splits are its files.
// - Thread safety: a ClickSource is immutable after it is made; Read and
//   Gather are const and may run concurrently, each filling its own batch.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "common/status.h"

namespace cairn {

inline constexpr int kClickCounts = 13;  // integer features per example
inline constexpr int kClickSlots = 26;   // categorical slots per example
inline constexpr int32_t kMissingCount = std::numeric_limits<int32_t>::min();
inline constexpr int64_t kMissingId = -1;

// Examples, one row each, row-major.
struct ClickBatch {
  int64_t size = 0;
  std::vector<float> labels;    // [size]: 0 or 1
  std::vector<int32_t> counts;  // [size, kClickCounts]; kMissingCount where missing
  std::vector<int64_t> ids;     // [size, kClickSlots]; kMissingId where missing

  // Sets size to n and the arrays to their sizes (contents unspecified);
  // keeps the capacity, so a batch reused at one size does not allocate.
  void Resize(int64_t n);
  int32_t count(int64_t row, int feature) const { return counts[row * kClickCounts + feature]; }
  int64_t id(int64_t row, int slot) const { return ids[row * kClickSlots + slot]; }
};

class ClickSource {
 public:
  virtual ~ClickSource() = default;

  // Examples in this source (this split, for a synthetic one).
  virtual int64_t size() const = 0;

  // Examples [first, first + n) into *batch (resized to n). OutOfRange,
  // with *batch unspecified, unless 0 <= first, 0 <= n, first + n <= size().
  virtual Status Read(int64_t first, int64_t n, ClickBatch* batch) const = 0;

  // Examples `indices` (any order, repeats allowed) into *batch, row k
  // holding example indices[k]: a shuffled epoch's batch. OutOfRange unless
  // every index is in [0, size()).
  virtual Status Gather(std::span<const int64_t> indices, ClickBatch* batch) const = 0;
};

// OutOfRange unless [first, first + n) lies within [0, size): for sources'
// Read.
Status CheckClickRange(int64_t first, int64_t n, int64_t size);

}  // namespace cairn
