#include "common/kernels/kernels.h"

#include "common/kernels/cpu_level.h"
#include "common/kernels/kernel_table.h"

namespace cairn {
namespace kernels {
namespace {

const internal::KernelTable& Active() {
#if defined(CAIRN_KERNELS_X86)
  switch (ActiveCpuLevel()) {
    case CpuLevel::kAvx512: return internal::kAvx512Kernels;
    case CpuLevel::kAvx2: return internal::kAvx2Kernels;
    case CpuLevel::kBaseline: break;
  }
#endif
  return internal::kBaselineKernels;
}

}  // namespace

void MatMul(const MatMulDims& dims, const float* a, const float* b, float* c) { Active().matmul(dims, a, b, c); }

void SgdUpdate(float* var, const float* grad, int64_t n, float lr) { Active().sgd(var, grad, n, lr); }

void MomentumUpdate(float* var, const float* grad, float* accum, int64_t n, float lr, float momentum, bool nesterov) {
  Active().momentum(var, grad, accum, n, lr, momentum, nesterov);
}

void AdagradUpdate(float* var, const float* grad, float* accum, int64_t n, float lr) {
  Active().adagrad(var, grad, accum, n, lr);
}

void AdamUpdate(float* var, const float* grad, float* m, float* v, int64_t n, float lr_t, float beta1, float beta2,
                float epsilon) {
  Active().adam(var, grad, m, v, n, lr_t, beta1, beta2, epsilon);
}

void FtrlUpdate(float* var, const float* grad, float* accum, float* linear, int64_t n, float lr, float l1, float l2,
                float lr_power) {
  Active().ftrl(var, grad, accum, linear, n, lr, l1, l2, lr_power);
}

}  // namespace kernels
}  // namespace cairn
