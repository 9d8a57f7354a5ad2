#include "common/aligned_buffer.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace cairn {

std::shared_ptr<uint8_t> AllocateAlignedBuffer(size_t bytes, bool zero) {
  if (bytes == 0) bytes = 1;
  void* raw = std::malloc(bytes + kBufferAlignment);
  if (raw == nullptr) throw std::bad_alloc();
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + kBufferAlignment) & ~(kBufferAlignment - 1);
  auto* p = reinterpret_cast<uint8_t*>(aligned);
  if (zero) std::memset(p, 0, bytes);
  // The deleter frees the block malloc returned, not the aligned pointer.
  return std::shared_ptr<uint8_t>(p, [raw](uint8_t*) { std::free(raw); });
}

}  // namespace cairn
