#include "common/kernels/cpu_level.h"

#include <atomic>

namespace cairn {
namespace {

CpuLevel Detect() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the registers
  // (XCR0), so a level reported here is one whose instructions run.
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512 && avx2) return CpuLevel::kAvx512;
  if (avx2) return CpuLevel::kAvx2;
#endif
  return CpuLevel::kBaseline;
}

std::atomic<int>& Active() {
  static std::atomic<int> active{static_cast<int>(DetectedCpuLevel())};
  return active;
}

}  // namespace

const char* CpuLevelName(CpuLevel level) {
  switch (level) {
    case CpuLevel::kBaseline: return "baseline";
    case CpuLevel::kAvx2: return "avx2";
    case CpuLevel::kAvx512: return "avx512";
  }
  return "unknown";
}

StatusOr<CpuLevel> ParseCpuLevel(const std::string& name) {
  for (CpuLevel l : {CpuLevel::kBaseline, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
    if (name == CpuLevelName(l)) return l;
  }
  return InvalidArgument("unknown CPU level '" + name + "' (baseline, avx2 or avx512)");
}

CpuLevel DetectedCpuLevel() {
  static const CpuLevel detected = Detect();
  return detected;
}

CpuLevel ActiveCpuLevel() { return static_cast<CpuLevel>(Active().load(std::memory_order_relaxed)); }

Status SetCpuLevel(CpuLevel level) {
  if (static_cast<int>(level) > static_cast<int>(DetectedCpuLevel())) {
    return InvalidArgument(std::string("this CPU does not support the ") + CpuLevelName(level) +
                           " kernels (it supports up to " + CpuLevelName(DetectedCpuLevel()) + ")");
  }
  Active().store(static_cast<int>(level), std::memory_order_relaxed);
  return Status::OK();
}

std::string CpuLevelReport() {
  return std::string(CpuLevelName(ActiveCpuLevel())) + " (detected: " + CpuLevelName(DetectedCpuLevel()) + ")";
}

}  // namespace cairn
