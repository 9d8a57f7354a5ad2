// RunChildProcess on /bin/sh: exit codes, signals and time-outs become a
// Status that quotes the end of the child's output.
#include "bench/child_process.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

using std::chrono::milliseconds;

TEST(RunChildProcess, SucceedsWhenTheChildExitsWithZero) {
  EXPECT_TRUE(RunChildProcess({"/bin/sh", "-c", "echo hello"}, milliseconds(10'000)).ok());
}

TEST(RunChildProcess, QuotesTheLastLinesOfAFailedChild) {
  Status s = RunChildProcess({"/bin/sh", "-c", "for i in $(seq 1 30); do echo line$i; done; echo oops >&2; exit 3"},
                             milliseconds(10'000));
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("exited with code 3"), std::string::npos) << s;
  EXPECT_NE(s.message().find("    oops"), std::string::npos) << s;
  EXPECT_NE(s.message().find("    line30"), std::string::npos) << s;
  EXPECT_EQ(s.message().find("line11\n"), std::string::npos) << s;  // 20 lines: line12..line30 and oops
}

TEST(RunChildProcess, ReportsTheSignalThatKilledTheChild) {
  Status s = RunChildProcess({"/bin/sh", "-c", "kill -TERM $$"}, milliseconds(10'000));
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("killed by signal 15"), std::string::npos) << s;
}

TEST(RunChildProcess, KillsAChildThatOutlivesTheLimit) {
  const auto start = std::chrono::steady_clock::now();
  Status s = RunChildProcess({"/bin/sh", "-c", "echo started; sleep 30"}, milliseconds(300));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(s.message().find("started"), std::string::npos) << s;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RunChildProcess, FailsToStartAMissingBinary) {
  EXPECT_EQ(RunChildProcess({"/nonexistent/cairn", "train"}, milliseconds(10'000)).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace cairn
