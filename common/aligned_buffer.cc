#include "common/aligned_buffer.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace cairn {
namespace {

constexpr uintptr_t kHugePageBytes = uintptr_t{2} << 20;

// A first touch of a 4 KiB page costs ~15-25 us in the VMs we run on, so a
// shard copy or a restore buffer of 288 MiB new to the process spent most of
// its time in ~74,000 page faults; with huge pages it takes one per 2 MiB. THP is
// usually in "madvise" mode, so large blocks have to ask. Only the 2 MiB
// pages wholly inside the block are advised: malloc owns the rest, and the
// advice must not make neighbouring small blocks resident. Small blocks (push
// frames of a few KiB to MiB) are left alone: malloc reuses them, they do not
// fault in steady state, and a madvise per frame would cost a syscall each.
// The advice is best effort: a kernel without THP refuses it, and that is fine.
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
