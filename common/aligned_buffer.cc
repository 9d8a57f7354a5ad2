#include "common/aligned_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

// clang says AddressSanitizer through __has_feature, gcc through __SANITIZE_ADDRESS__.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CAIRN_HAS_ASAN 1
#endif
#endif
#ifndef CAIRN_HAS_ASAN
#define CAIRN_HAS_ASAN 0
#endif

namespace cairn {
namespace {

constexpr uintptr_t kHugePageBytes = uintptr_t{2} << 20;

// Large blocks ask for transparent huge pages (THP is usually in "madvise"
// mode). Shard copies, restore buffers and large frames are touched whole, so
// 2 MiB pages cost 512x fewer faults and TLB entries: a snapshot copy into
// reused huge-page buffers ran ~2x faster than into 4 KiB ones. The price, in
// some VMs, is a slower first touch of memory new to the process (measured
// 2-2.6x on a restore onto a new cluster). Only the 2 MiB pages wholly inside
// the block are advised: malloc owns the rest. Small blocks (push frames) are
// left alone: malloc reuses them without faults. Best effort: a kernel
// without THP refuses, which is fine.
void AdviseHugePages(uint8_t* p, size_t bytes) {
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHugePageBytes - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

// Freed blocks, kept by size class for the next buffer of that class. A
// training step allocates the same tensors every step, and glibc hands
// blocks above its mmap threshold (at most 32 MiB) back to the kernel on
// free, so each step would fault in fresh pages (measured on the
// [4096,4096] MLP: ~6,700 faults per step, and on the 784-256-128-10 MLP
// ~800); small blocks are kept too, so that a warm step calls malloc for
// none of its tensors (build/bin/step_allocations). A class is a size
// rounded up to an eighth of its power of two (at most 12.5% more than
// asked for; at least kMinClassBytes), so frames whose sizes vary a little
// share blocks. Bounded: at most kRecycleMaxBytes in all, and per class
// kRecycleMaxPerSize blocks or kRecycleClassBytes bytes, whichever allows
// more (a step frees many tensors of one class at once: at its end, every
// activation of a layer's width); a block beyond that is freed.
constexpr size_t kMinClassBytes = 64;
constexpr size_t kRecycleMaxBytes = size_t{512} << 20;
constexpr size_t kRecycleMaxPerSize = 8;
constexpr size_t kRecycleClassBytes = size_t{64} << 20;

size_t SizeClass(size_t bytes) {
  if (bytes <= kMinClassBytes) return kMinClassBytes;
  size_t power = 1;
  while (power < bytes) power <<= 1;
  const size_t step = power / 8;
  return (bytes + step - 1) / step * step;
}

class Recycler {
 public:
  // A kept block of exactly `bytes`, or nullptr.
  void* Take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(bytes);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* raw = it->second.back();
    it->second.pop_back();
    kept_ -= bytes;
    return raw;
  }
  void Give(void* raw, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<void*>& same = free_[bytes];
      const size_t per_class = std::max(kRecycleMaxPerSize, kRecycleClassBytes / bytes);
      if (kept_ + bytes <= kRecycleMaxBytes && same.size() < per_class) {
        same.push_back(raw);
        kept_ += bytes;
        return;
      }
    }
    std::free(raw);
  }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // guarded by mu_
  size_t kept_ = 0;                                       // guarded by mu_
};

// Never destroyed: buffers may be freed by static destructors after main.
Recycler& TheRecycler() {
  static Recycler* r = new Recycler;
  return *r;
}

// Frees (or keeps) the block malloc returned, not the aligned pointer.
struct BlockDeleter {
  void* raw;
  size_t bytes;
  bool recycled;
  void operator()(uint8_t*) const {
    if (recycled) {
      TheRecycler().Give(raw, bytes);
    } else {
      std::free(raw);
    }
  }
};

// The shared_ptr control blocks of buffers, all of one size, kept on a free
// list (up to kMaxKeptControlBlocks) rather than freed: each buffer needs
// one, and a warm step would otherwise allocate one per tensor.
constexpr size_t kMaxKeptControlBlocks = 1 << 16;

class ControlBlockPool {
 public:
  explicit ControlBlockPool(size_t bytes) : bytes_(bytes) { free_.reserve(kMaxKeptControlBlocks); }
  void* Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        void* p = free_.back();
        free_.pop_back();
        return p;
      }
    }
    return ::operator new(bytes_);
  }
  void Give(void* p) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (free_.size() < kMaxKeptControlBlocks) {  // within the reserved capacity: no allocation
        free_.push_back(p);
        return;
      }
    }
    ::operator delete(p);
  }

 private:
  const size_t bytes_;
  std::mutex mu_;
  std::vector<void*> free_;  // guarded by mu_
};

// The allocator shared_ptr gets for its control block (rebound by it to the
// block's type; it only ever asks for one).
template <class T>
struct ControlBlockAllocator {
  using value_type = T;
  ControlBlockAllocator() = default;
  template <class U>
  ControlBlockAllocator(const ControlBlockAllocator<U>&) {}  // NOLINT: rebinding
  static ControlBlockPool& Pool() {
    static ControlBlockPool* pool = new ControlBlockPool(sizeof(T));  // never destroyed, as TheRecycler
    return *pool;
  }
  T* allocate(size_t n) {
    if (n != 1) return static_cast<T*>(::operator new(n * sizeof(T)));
    return static_cast<T*>(Pool().Take());
  }
  void deallocate(T* p, size_t n) {
    if (n != 1) {
      ::operator delete(p);
      return;
    }
    Pool().Give(p);
  }
  template <class U>
  bool operator==(const ControlBlockAllocator<U>&) const { return true; }
};

}  // namespace

std::shared_ptr<uint8_t> AllocateAlignedBuffer(size_t bytes, bool zero) {
  if (bytes == 0) bytes = 1;
#if defined(__SANITIZE_ADDRESS__) || CAIRN_HAS_ASAN
  const bool recycled = false;  // AddressSanitizer must see every free, to catch a use after it
#else
  const bool recycled = true;
#endif
  if (recycled) bytes = SizeClass(bytes);
  void* raw = recycled ? TheRecycler().Take(bytes) : nullptr;
  const bool fresh = raw == nullptr;
  if (fresh) raw = std::malloc(bytes + kBufferAlignment);
  if (raw == nullptr) throw std::bad_alloc();
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + kBufferAlignment) & ~(kBufferAlignment - 1);
  auto* p = reinterpret_cast<uint8_t*>(aligned);
  if (fresh && bytes >= kHugePageAdviseBytes) AdviseHugePages(p, bytes);  // before the first touch
  if (zero) std::memset(p, 0, bytes);
  if (!recycled) return std::shared_ptr<uint8_t>(p, BlockDeleter{raw, bytes, false});
  return std::shared_ptr<uint8_t>(p, BlockDeleter{raw, bytes, true}, ControlBlockAllocator<uint8_t>());
}

}  // namespace cairn
