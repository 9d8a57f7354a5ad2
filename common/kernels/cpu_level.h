// CpuLevel: which x86-64 vector instructions the hot kernels may use.
//
// One Cairn binary carries each kernel built three times (common/kernels.h):
// for x86-64's baseline (SSE2), for AVX2 with FMA, and for AVX-512 (F, DQ,
// BW, VL). At start-up the best level this CPU and its operating system
// support is chosen; a command may lower it (`cairn --cpu-level`), for tests
// and for comparing levels, never raise it past what the CPU offers.
//
// The active level is process-wide; set it before the first kernel runs
// (at the command's edge), not while kernels run on other threads.
#pragma once

#include <string>

#include "common/status.h"

namespace cairn {

enum class CpuLevel : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// "baseline", "avx2", "avx512".
const char* CpuLevelName(CpuLevel level);
// The inverse of CpuLevelName; InvalidArgument naming the choices otherwise.
StatusOr<CpuLevel> ParseCpuLevel(const std::string& name);

// The best level this CPU and OS support (from cpuid and xgetbv).
CpuLevel DetectedCpuLevel();
// The level the kernels use now: DetectedCpuLevel() unless lowered.
CpuLevel ActiveCpuLevel();
// Uses `level` from now on. InvalidArgument if this CPU does not support it
// (naming what it does support).
Status SetCpuLevel(CpuLevel level);

// "avx512 (detected: avx512)": for logs and `cairn --version`.
std::string CpuLevelReport();

}  // namespace cairn
