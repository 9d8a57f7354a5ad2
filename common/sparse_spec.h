// SparseTableSpec: an embedding table keyed by int64 id, each row `dim`
// float32 values; and the two pure functions every holder of such a table
// agrees on: which server holds an id, and what a row holds before its first
// update.
//
// Both depend only on their arguments (never on which server asks, how many
// rows exist or in what order ids were first touched), so a table re-routed
// onto another number of servers, or a row touched for the first time after
// a restore, is the same table.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/variable_spec.h"
#include "common/wire_archive.h"

namespace cairn {

struct SparseTableSpec {
  std::string name;
  int32_t dim = 0;
  // Per row, seeded by (init.seed, id). zeros, ones, constant, uniform,
  // normal or truncated_normal (the Glorot kinds need a fan-in a table of
  // unbounded rows does not have).
  InitializerSpec init;
  bool trainable = true;

  template <class A> void save(A& ar) const { ar(name, dim, init, trainable); }
  template <class A> void load(A& ar) {
    LoadString(ar, name, 1024, "table name");
    ar(dim, init);
    LoadBool(ar, trainable, "trainable");
  }
  bool operator==(const SparseTableSpec&) const = default;
  // "emb/user dim 16 uniform(seed=3) trainable".
  std::string DebugString() const;
};

// Bounds on every sparse request, checked on both sides of the wire.
struct SparseLimits {
  size_t max_name_bytes = 256;
  int32_t max_dim = 4096;
  uint64_t max_ids_per_request = uint64_t{1} << 22;  // 4M ids, 32 MiB of ids
};

// Name (non-empty, printable, bounded), dim in [1, max_dim], initializer
// kind; InvalidArgument naming the table and field otherwise.
Status ValidateSparseSpec(const SparseTableSpec& spec, const SparseLimits& limits = {});

// The id every table reserves: no row has it (an empty slot of a server's
// hash map). Requests carrying it are refused.
inline constexpr int64_t kReservedSparseId = INT64_MIN;

// A well-mixed 64-bit hash of `id` (SplitMix64's finalizer): structured
// ids (sequential, strided, hashed-then-truncated) spread evenly.
// Inline: the lookups of a pull or push call it for every id.
inline uint64_t MixId(int64_t id) {
  uint64_t x = static_cast<uint64_t>(id);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The server in [0, num_servers) that holds `id`'s row: a pure function of
// id and server count (a multiply-shift of MixId, not id % S).
inline int ServerOfId(int64_t id, int num_servers) {
  // The high half of MixId(id) * S: in [0, S), as even as MixId is.
  return static_cast<int>((static_cast<unsigned __int128>(MixId(id)) * static_cast<uint64_t>(num_servers)) >> 64);
}

// The values row `id` holds before its first update: `spec.dim` floats into
// `row`.
void InitializeSparseRow(const SparseTableSpec& spec, int64_t id, float* row);

}  // namespace cairn
