// SparseIndex: a sparse table's id -> row map (ps/sparse_table.h), and the
// prefetch its lookups use. Internal to the table: not thread-safe, the
// table's lock guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/sparse_spec.h"

namespace cairn {

// Starts bringing the cache line at `p` in. An asm statement on x86-64:
// GCC 12 deleted __builtin_prefetch from the table's inlined lookup loops
// (the dead-code pass counts a prefetch as having no effect), which left
// every slot and record a cache miss waited for in turn.
inline void PrefetchLine(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

// id -> row: linear probing over 8-byte slots, each a row and a tag
// (Tag, below), capacity 2^bits, at most 70% full. An id's home
// slot is its tag's top `bits` bits, so the index grows without reading a
// record. A tag names its id only almost surely: Candidate gives the first
// row whose tag matches (the caller checks that row's record holds the id,
// and calls Find if it does not); Find checks every match.
class SparseIndex {
 public:
  // Room for `expected` ids without growing.
  explicit SparseIndex(size_t expected = 0) {
    int bits = 10;
    while (expected * 10 > (size_t{1} << bits) * 7) ++bits;
    Resize(bits);
  }

  static constexpr uint32_t kNoRow = UINT32_MAX;  // an empty slot; no row has it

  static uint32_t Tag(int64_t id) {
    // Not MixId's own high bits: ServerOfId routes by those, so every id on
    // one of S servers shares them, and a home slot taken from them would
    // leave all but 1/S of the index unused (measured: 2 servers halved the
    // pull and push rates). A multiply by an odd constant spreads all 64 bits
    // into the high ones.
    return static_cast<uint32_t>((MixId(id) * 0x9e3779b97f4a7c15ULL) >> 32);
  }

  // Brings id's home slot toward the cache (lookups of a batch of random
  // ids are cache misses, one after another, otherwise).
  void Prefetch(int64_t id) const { PrefetchLine(&slots_[Home(Tag(id))]); }
  // The row of the first slot from id's home whose tag is id's, or kNoRow
  // if none: then id is not present.
  uint32_t Candidate(int64_t id) const {
    const uint32_t tag = Tag(id);
    for (size_t at = Home(tag);; at = (at + 1) & mask_) {
      const Slot s = slots_[at];
      if (s.row == kNoRow || s.tag == tag) return s.row;
    }
  }
  // id's row, or kNoRow: `id_of(row)` is the id row's record holds.
  template <typename IdOf>
  uint32_t Find(int64_t id, IdOf id_of) const {
    const uint32_t tag = Tag(id);
    for (size_t at = Home(tag);; at = (at + 1) & mask_) {
      const Slot s = slots_[at];
      if (s.row == kNoRow) return kNoRow;
      if (s.tag == tag && id_of(s.row) == id) return s.row;
    }
  }
  // `id` must not be present.
  void Insert(int64_t id, uint32_t row) {
    if ((size_ + 1) * 10 > slots_.size() * 7) Resize(bits_ + 1);
    Place(Slot{Tag(id), row});
    ++size_;
  }
  // Inserts `id` unless it is present (id_of as for Find); false if it was.
  template <typename IdOf>
  bool InsertNew(int64_t id, uint32_t row, IdOf id_of) {
    if (Find(id, id_of) != kNoRow) return false;
    Insert(id, row);
    return true;
  }
  size_t capacity() const { return slots_.size(); }
  static constexpr size_t kSlotBytes = 8;

 private:
  struct Slot {
    uint32_t tag;
    uint32_t row;  // kNoRow: empty
  };
  static_assert(sizeof(Slot) == kSlotBytes);

  size_t Home(uint32_t tag) const { return tag >> (32 - bits_); }
  void Place(Slot slot) {
    size_t at = Home(slot.tag);
    while (slots_[at].row != kNoRow) at = (at + 1) & mask_;
    slots_[at] = slot;
  }
  // Moves every slot into a new array of 2^bits (home slots need only the tags).
  void Resize(int bits) {
    // 2^32 slots hold the most rows a server can number (kNoRow is the last).
    if (bits > 32) std::abort();
    std::vector<Slot> old = std::move(slots_);
    bits_ = bits;
    slots_.assign(size_t{1} << bits, Slot{0, kNoRow});
    slots_.shrink_to_fit();
    mask_ = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.row != kNoRow) Place(s);
    }
  }

  std::vector<Slot> slots_;
  int bits_ = 0;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace cairn
