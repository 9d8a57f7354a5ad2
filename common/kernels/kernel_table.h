// Internal to common/kernels: one CpuLevel's build of every kernel, as a
// table of functions. kernels_<level>.cc each define one (from
// kernels_impl.h); kernels.cc picks the active level's.
#pragma once

#include <cstdint>

#include "common/kernels/kernels.h"

namespace cairn {
namespace kernels {
namespace internal {

struct KernelTable {
  void (*matmul)(const MatMulDims&, const float*, const float*, float*);
  void (*sgd)(float*, const float*, int64_t, float);
  void (*momentum)(float*, const float*, float*, int64_t, float, float, bool);
  void (*adagrad)(float*, const float*, float*, int64_t, float);
  void (*adam)(float*, const float*, float*, float*, int64_t, float, float, float, float);
  void (*ftrl)(float*, const float*, float*, float*, int64_t, float, float, float, float);
};

extern const KernelTable kBaselineKernels;
#if defined(CAIRN_KERNELS_X86)
extern const KernelTable kAvx2Kernels;
extern const KernelTable kAvx512Kernels;
#endif

}  // namespace internal
}  // namespace kernels
}  // namespace cairn
