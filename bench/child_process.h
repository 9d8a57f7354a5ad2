// Running a command as a child process of a benchmark, so that the benchmark
// measures exactly what a user runs (`cairn bench train` runs `cairn train`).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace cairn {

// Runs argv[0] (a path: PATH is not searched) with the arguments argv[1..]
// in its own process group, with this process's environment and working
// directory, and waits for it to exit. Its stdout and stderr are captured
// together and dropped, except for their last lines, which an error quotes.
//
// Returns OK when the child exits with code 0. Otherwise an error naming the
// command and how it ended, followed by the tail of its output:
// Unavailable if it cannot be started, Internal if it exits non-zero or is
// killed by a signal, DeadlineExceeded if it is still running after `limit`
// (its process group is then killed with SIGKILL and reaped first).
//
// Blocks the calling thread; any thread may call it.
[[nodiscard]] Status RunChildProcess(const std::vector<std::string>& argv, std::chrono::milliseconds limit);

}  // namespace cairn
