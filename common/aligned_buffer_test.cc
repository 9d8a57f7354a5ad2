#include "common/aligned_buffer.h"

#include <cstdint>
#include <cstring>

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
