#include "common/parallel_for.h"

#include <atomic>
#include <chrono>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(ParallelFor, RunsEveryIndexOnceAndItsWritesAreSeenAfter) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{1000}, size_t{100000}}) {
    std::vector<int> calls(n, 0);  // each index written by one call only: no race if each runs once
    ParallelFor(n, [&](size_t i) { calls[i] += 1; });
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(calls[i], 1) << "index " << i << " of " << n;
  }
}

// Loops from several threads at once: only one can have the helper; the
// others run their own pieces. Each loop still runs each index once.
TEST(ParallelFor, LoopsFromSeveralThreadsAtOnceEachRunWhole) {
  constexpr int kThreads = 4, kLoops = 200;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int loop = 0; loop < kLoops; ++loop) {
        const size_t n = 1 + static_cast<size_t>((t * 7919 + loop * 104729) % 3000);
        std::vector<std::atomic<int>> calls(n);
        ParallelFor(n, [&](size_t i) { calls[i].fetch_add(1); });
        for (size_t i = 0; i < n; ++i) {
          if (calls[i].load() != 1) ++bad;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

// On a machine with more than one core, a loop long enough for the helper
// to wake gets some of its pieces run on another thread.
TEST(ParallelFor, TheHelperTakesPiecesOfALongLoop) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core: no helper";
  const std::thread::id me = std::this_thread::get_id();
  bool helped = false;
  for (int attempt = 0; attempt < 50 && !helped; ++attempt) {
    std::atomic<int> elsewhere{0};
    ParallelFor(64, [&](size_t) {
      if (std::this_thread::get_id() != me) ++elsewhere;
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      while (std::chrono::steady_clock::now() < until) {
      }
    });
    helped = elsewhere.load() > 0;
  }
  EXPECT_TRUE(helped);
}

}  // namespace
}  // namespace cairn
