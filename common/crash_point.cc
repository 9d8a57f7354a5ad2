#include "common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace cairn {

StatusOr<std::shared_ptr<const CrashPoints>> CrashPoints::Parse(const std::string& spec) {
  std::string name = spec;
  long hit = 1;
  const size_t colon = spec.rfind(':');
  if (colon != std::string::npos) {
    char* end = nullptr;
    hit = std::strtol(spec.c_str() + colon + 1, &end, 10);
    if (end == spec.c_str() + colon + 1 || *end != '\0' || hit < 1) {
      return InvalidArgument("crash point '" + spec + "': expected NAME or NAME:N with N >= 1");
    }
    name.resize(colon);
  }
  return std::shared_ptr<const CrashPoints>(new CrashPoints(std::move(name), hit));
}

void CrashPoints::Reach(const char* name) const {
  if (name_.empty() || name_ != name) return;
  if (hits_.fetch_add(1) + 1 < hit_) return;
  // Say where, unbuffered, so a test can tell which point it hit.
  char line[256];
  const int n = std::snprintf(line, sizeof(line), "cairn: crash point %s reached: SIGKILL\n", name);
  if (n > 0) (void)!write(2, line, static_cast<size_t>(n));
  kill(getpid(), SIGKILL);
}

}  // namespace cairn
