#include "common/aligned_buffer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CAIRN_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(CAIRN_TEST_ASAN)
constexpr bool kRecycles = false;  // AddressSanitizer sees every free instead
#else
constexpr bool kRecycles = true;
#endif

TEST(AlignedBuffer, IsAlignedAndZeroedWhenAsked) {
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{100}, size_t{1} << 20}) {
    std::shared_ptr<uint8_t> b = AllocateAlignedBuffer(bytes, /*zero=*/true);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.get()) % kBufferAlignment, 0u);
    for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(b.get()[i], 0) << bytes << " at " << i;
  }
}

// A training step allocates the same tensors every step: a freed large
// block is handed out again for the next buffer of its size class.
TEST(AlignedBuffer, AFreedLargeBlockIsReusedForTheNextOfItsSizeClass) {
  if (!kRecycles) GTEST_SKIP() << "no recycling under AddressSanitizer";
  const size_t bytes = size_t{3} << 20;
  const uint8_t* first = nullptr;
  {
    std::shared_ptr<uint8_t> b = AllocateAlignedBuffer(bytes, /*zero=*/false);
    std::memset(b.get(), 7, bytes);
    first = b.get();
  }
  std::shared_ptr<uint8_t> again = AllocateAlignedBuffer(bytes - 1000, /*zero=*/false);  // the same class
  EXPECT_EQ(again.get(), first);
  // Zeroed when asked, even when reused.
  std::shared_ptr<uint8_t> other = AllocateAlignedBuffer(size_t{5} << 20, /*zero=*/false);
  const uint8_t* second = other.get();
  other.reset();
  std::shared_ptr<uint8_t> zeroed = AllocateAlignedBuffer(size_t{5} << 20, /*zero=*/true);
  EXPECT_EQ(zeroed.get(), second);
  for (size_t i = 0; i < (size_t{5} << 20); i += 4096) ASSERT_EQ(zeroed.get()[i], 0) << i;
}

// Small blocks too: a warm training step then calls malloc for none of its
// tensors, the bias gradients and scalars included.
TEST(AlignedBuffer, AFreedSmallBlockIsReusedAndEverySizeStaysAligned) {
  for (size_t bytes : {size_t{1}, size_t{4}, size_t{63}, size_t{64}, size_t{100}, size_t{512}, size_t{5000}}) {
    std::shared_ptr<uint8_t> b = AllocateAlignedBuffer(bytes, /*zero=*/false);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.get()) % kBufferAlignment, 0u) << bytes;
    std::memset(b.get(), 1, bytes);
    const uint8_t* first = b.get();
    b.reset();
    std::shared_ptr<uint8_t> again = AllocateAlignedBuffer(bytes, /*zero=*/true);
    if (kRecycles) EXPECT_EQ(again.get(), first) << bytes;
    for (size_t i = 0; i < bytes; ++i) ASSERT_EQ(again.get()[i], 0) << bytes << " at " << i;
  }
}

// A step frees every activation of a layer at once: more blocks of one
// class than 8 are kept, so that the next step finds them all.
TEST(AlignedBuffer, ManyFreedBlocksOfOneClassAreAllKept) {
  if (!kRecycles) GTEST_SKIP() << "no recycling under AddressSanitizer";
  const size_t bytes = size_t{512} << 10;  // an activation of 128 x 1024 floats
  std::vector<std::shared_ptr<uint8_t>> blocks;
  std::vector<const uint8_t*> first;
  for (int i = 0; i < 20; ++i) {
    blocks.push_back(AllocateAlignedBuffer(bytes, false));
    first.push_back(blocks.back().get());
  }
  blocks.clear();
  for (int i = 0; i < 20; ++i) blocks.push_back(AllocateAlignedBuffer(bytes, false));
  for (const auto& b : blocks) EXPECT_NE(std::find(first.begin(), first.end(), b.get()), first.end());
}

TEST(AlignedBuffer, ABlockInUseIsNeverHandedOutTwice) {
  const size_t bytes = size_t{1} << 20;
  std::shared_ptr<uint8_t> a = AllocateAlignedBuffer(bytes, false);
  std::shared_ptr<uint8_t> b = AllocateAlignedBuffer(bytes, false);
  std::shared_ptr<uint8_t> c = AllocateAlignedBuffer(bytes, false);
  EXPECT_NE(a.get(), b.get());
  EXPECT_NE(b.get(), c.get());
  EXPECT_NE(a.get(), c.get());
}

}  // namespace
}  // namespace cairn
