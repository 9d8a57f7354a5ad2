#include "common/aligned_buffer.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

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

}  // namespace

std::shared_ptr<uint8_t> AllocateAlignedBuffer(size_t bytes, bool zero) {
  if (bytes == 0) bytes = 1;
  void* raw = std::malloc(bytes + kBufferAlignment);
  if (raw == nullptr) throw std::bad_alloc();
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + kBufferAlignment) & ~(kBufferAlignment - 1);
  auto* p = reinterpret_cast<uint8_t*>(aligned);
  if (bytes >= kHugePageAdviseBytes) AdviseHugePages(p, bytes);  // before the first touch
  if (zero) std::memset(p, 0, bytes);
  // The deleter frees the block malloc returned, not the aligned pointer.
  return std::shared_ptr<uint8_t>(p, [raw](uint8_t*) { std::free(raw); });
}

}  // namespace cairn
