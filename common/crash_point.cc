#include "common/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace cairn {
namespace {

struct Target {
  std::string name;  // "" when no crash is armed
  long hit = 1;      // die on this hit
};

const Target& Armed() {
  static const Target target = [] {
    Target t;
    const char* env = std::getenv("CAIRN_CRASH_AT");
    if (!env || !*env) return t;
    std::string spec = env;
    const size_t colon = spec.rfind(':');
    if (colon != std::string::npos) {
      t.hit = std::max(1L, std::strtol(spec.c_str() + colon + 1, nullptr, 10));
      spec.resize(colon);
    }
    t.name = spec;
    return t;
  }();
  return target;
}

std::atomic<long> hits{0};

}  // namespace

void CrashPoint(const char* name) {
  const Target& t = Armed();
  if (t.name.empty() || t.name != name) return;
  if (hits.fetch_add(1) + 1 < t.hit) return;
  // Say where, unbuffered, so a test can tell which point it hit.
  char line[256];
  const int n = std::snprintf(line, sizeof(line), "cairn: crash point %s reached: SIGKILL\n", name);
  if (n > 0) (void)!write(2, line, static_cast<size_t>(n));
  kill(getpid(), SIGKILL);
}

}  // namespace cairn
