#include "bench/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

extern char** environ;

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kTailBytes = 16 * 1024;  // of output kept while the child runs
constexpr int kTailLines = 20;            // quoted in an error

std::string CommandLine(const std::vector<std::string>& argv) {
  std::string line = "`";
  for (const std::string& a : argv) line += (line.size() > 1 ? " " : "") + a;
  return line + "`";
}

// The last kTailLines lines of `output`, indented, each on a line of its own.
std::string QuoteTail(const std::string& output) {
  if (output.empty()) return "; it wrote nothing";
  const size_t end = output.back() == '\n' ? output.size() - 1 : output.size();
  size_t begin = end;
  int breaks = 0;
  while (begin > 0) {
    if (output[begin - 1] == '\n' && ++breaks == kTailLines) break;
    --begin;
  }
  std::string quoted = "; the end of its output:";
  for (size_t at = begin; at <= end;) {
    size_t line_end = std::min(output.find('\n', at), end);
    quoted += "\n    " + output.substr(at, line_end - at);
    at = line_end + 1;
  }
  return quoted;
}

std::string HowItEnded(int wait_status) {
  if (WIFEXITED(wait_status)) return fmt::format("exited with code {}", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    return fmt::format("was killed by signal {} ({})", WTERMSIG(wait_status), strsignal(WTERMSIG(wait_status)));
  }
  return fmt::format("ended with wait status {}", wait_status);
}

// Starts argv in its own process group (so that a time-out can kill all of
// it), with no signals blocked and `out_fd` as its stdout and stderr.
StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int out_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_fd, STDERR_FILENO);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return Unavailable("cannot start " + CommandLine(argv) + ": " + std::strerror(err));
  return pid;
}

// Reads `fd` into `tail` (its end only) until every writer has closed it.
// DeadlineExceeded if that has not happened by `deadline`.
Status ReadUntilClosed(int fd, Clock::time_point deadline, std::string* tail) {
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return DeadlineExceeded("output still open");
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (ready < 0 && errno != EINTR) return Internal(std::string("poll: ") + std::strerror(errno));
    if (ready <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Internal(std::string("read: ") + std::strerror(errno));
    if (n == 0) return Status::OK();
    tail->append(buf, static_cast<size_t>(n));
    if (tail->size() > 2 * kTailBytes) tail->erase(0, tail->size() - kTailBytes);
  }
}

// The child's wait status once it has exited; DeadlineExceeded if it has not
// by `deadline`. Polls: a child that closed its output is about to exit.
StatusOr<int> WaitUntil(pid_t pid, Clock::time_point deadline) {
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return Internal(std::string("waitpid: ") + std::strerror(errno));
    if (Clock::now() >= deadline) return DeadlineExceeded("not exited");
    usleep(10'000);
  }
}

}  // namespace

Status RunChildProcess(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
  if (argv.empty()) return InvalidArgument("RunChildProcess: no command");
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Unavailable(std::string("pipe: ") + std::strerror(errno));
  StatusOr<pid_t> pid = Spawn(argv, fds[1]);
  close(fds[1]);  // the child holds its own copy; EOF comes when it closes that
  if (!pid.ok()) {
    close(fds[0]);
    return pid.status();
  }
  const auto deadline = Clock::now() + limit;
  std::string tail;
  const Status read = ReadUntilClosed(fds[0], deadline, &tail);
  StatusOr<int> wait_status = read.ok() ? WaitUntil(*pid, deadline) : StatusOr<int>(read);
  close(fds[0]);
  if (!wait_status.ok()) {
    kill(-*pid, SIGKILL);
    waitpid(*pid, nullptr, 0);
    if (wait_status.status().code() != StatusCode::kDeadlineExceeded) {
      return wait_status.status().WithContext(CommandLine(argv) + " (killed)");
    }
    return DeadlineExceeded(fmt::format("{} still running after {:.0f} s: killed", CommandLine(argv),
                                        std::chrono::duration<double>(limit).count()) +
                            QuoteTail(tail));
  }
  if (WIFEXITED(*wait_status) && WEXITSTATUS(*wait_status) == 0) return Status::OK();
  return Internal(CommandLine(argv) + " " + HowItEnded(*wait_status) + QuoteTail(tail));
}

}  // namespace cairn
