#include "ps/sparse_repeats.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "common/parallel_for.h"
#include "common/sparse_spec.h"

namespace cairn {
namespace {

// Whether any of `n` hashes (MixId of ids that are not the reserved id)
// repeats: open addressing over `set`, which is sized here. MixId is a
// bijection, so equal hashes are equal ids, and MixId(kReservedSparseId)
// marks an empty slot.
bool HashesRepeat(const uint64_t* hashes, size_t n, std::vector<uint64_t>& set) {
  const uint64_t empty = MixId(kReservedSparseId);
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  set.assign(cap, empty);
  const size_t mask = cap - 1;
  for (size_t i = 0; i < n; ++i) {
    size_t at = hashes[i] & mask;
    while (set[at] != empty) {
      if (set[at] == hashes[i]) return true;
      at = (at + 1) & mask;
    }
    set[at] = hashes[i];
  }
  return false;
}

// Whether `n` ids (none the reserved id) name one twice, to refuse a push
// before anything changes. A set of a large push's ids does not fit the
// cache, and probing it randomly cost a third of a 65,536-id push's time
// on the server; so the ids' hashes are first split by their top bits
// into buckets of about 1,024 (one pass, writing a few streams), and each
// bucket is checked in a set of 16 KiB. A large call shares the hashing
// and the buckets with ParallelFor's helper. Scratch is reused per thread.
}  // namespace

bool HasRepeatedIds(const int64_t* ids, size_t n) {
  constexpr size_t kPiece = 16384;  // ids hashed, or about that many checked, per ParallelFor piece
  // The scratch is this thread's; the helper's calls see it through these
  // pointers (a thread_local named in a lambda is the running thread's).
  thread_local std::vector<uint64_t> hash_scratch, parted_scratch;
  thread_local std::vector<uint32_t> start_scratch;
  hash_scratch.resize(n);
  uint64_t* const hashes = hash_scratch.data();
  ParallelFor((n + kPiece - 1) / kPiece, [&](size_t p) {
    for (size_t i = p * kPiece; i < std::min(n, (p + 1) * kPiece); ++i) hashes[i] = MixId(ids[i]);
  });
  int bits = 0;
  while ((n >> bits) > 1024 && bits < 16) ++bits;
  if (bits == 0) {
    thread_local std::vector<uint64_t> set;
    return HashesRepeat(hashes, n, set);
  }
  const int shift = 64 - bits;
  const size_t buckets = size_t{1} << bits;
  start_scratch.assign(buckets + 1, 0);
  uint32_t* const start = start_scratch.data();
  // Buckets by the top bits of hash * an odd constant, not of the hash:
  // ServerOfId routes by those, so on one of S servers they are all alike.
  auto bucket = [shift](uint64_t h) { return (h * 0x9e3779b97f4a7c15ULL) >> shift; };
  for (size_t i = 0; i < n; ++i) ++start[bucket(hashes[i]) + 1];
  for (size_t b = 0; b < buckets; ++b) start[b + 1] += start[b];
  parted_scratch.resize(n);
  uint64_t* const parted = parted_scratch.data();
  for (size_t i = 0; i < n; ++i) parted[start[bucket(hashes[i])]++] = hashes[i];
  // start[b] is now where bucket b ends: bucket b is [b == 0 ? 0 : start[b - 1], start[b]).
  const size_t per_piece = std::max<size_t>(1, kPiece / 1024);
  std::atomic<bool> repeat{false};
  ParallelFor((buckets + per_piece - 1) / per_piece, [&](size_t p) {
    thread_local std::vector<uint64_t> set;  // the running thread's own
    for (size_t b = p * per_piece; b < std::min(buckets, (p + 1) * per_piece) && !repeat.load(); ++b) {
      const size_t from = b == 0 ? 0 : start[b - 1];
      if (HashesRepeat(parted + from, start[b] - from, set)) repeat = true;
    }
  });
  return repeat.load();
}

}  // namespace cairn
