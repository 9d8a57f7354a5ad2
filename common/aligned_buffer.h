// 64-byte-aligned byte buffers for tensors and received frames.
//
// Built on malloc rather than aligned operator new: on glibc 2.36 freed
// aligned blocks of a few MiB are not reused, so every new buffer
// first-touched fresh pages (measured: ~2,900 page faults per 16 MiB push).
// Blocks are recycled here (see below): glibc returns those above its mmap
// threshold to the kernel, and reusing the small ones keeps a warm training
// step free of malloc calls.
//
// Blocks of kHugePageAdviseBytes or more are also advised for transparent
// huge pages (MADV_HUGEPAGE on their 2 MiB-aligned interior), so memory that
// is new to the process is first touched 2 MiB at a time rather than 4 KiB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace cairn {

constexpr size_t kBufferAlignment = 64;
constexpr size_t kHugePageAdviseBytes = size_t{4} << 20;

// At least `bytes` (and at least 1) bytes, 64-byte aligned, freed when the
// last owner goes. Zero-filled only if `zero` (all of `bytes`). A freed
// block is kept (up to 512 MiB in all; per size class, a class being the
// size rounded up to an eighth of its power of two, 8 blocks or 64 MiB,
// whichever is more) for the next buffer of its class, and so is its
// shared_ptr control block, so that a training step, which allocates the
// same tensors every step, reuses memory it already touched and calls
// malloc for none of them once warm. (Not under AddressSanitizer, which
// must see every free.) Thread-safe.
std::shared_ptr<uint8_t> AllocateAlignedBuffer(size_t bytes, bool zero);

}  // namespace cairn
