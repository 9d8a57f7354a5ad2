// The hot numeric kernels: matrix multiply and the optimizers' elementwise
// updates, each built for every CpuLevel (common/kernels/cpu_level.h) and
// run at the active one. Callers pass raw float arrays; nothing here
// allocates, locks or keeps state between calls. Thread-safe.
//
// Numerics:
// - MatMul at different levels may differ in the last bits (the order of
//   the products' sums and fused multiply-adds differ); at one level it is
//   deterministic for the same inputs and shapes.
// - The optimizer updates use only correctly rounded operations (+ - * /
//   sqrt, no fused multiply-add, no approximate reciprocal), element by
//   element: their results are bit-identical at every level and for arrays
//   at any address or alignment. A sparse row updated in place therefore
//   rounds exactly as the same row of a dense variable would, and a server's
//   update does not depend on its host's CPU.
#pragma once

#include <cstdint>

namespace cairn {
namespace kernels {

// C[m, n] = op(A) · op(B), or C += op(A) · op(B) with `accumulate`. All three
// are row-major and dense (a row's stride is its length). op(A) is [m, k]:
// A is stored [m, k], or [k, m] with transpose_a. op(B) is [k, n]: B is
// stored [k, n], or [n, k] with transpose_b. C must not overlap A or B.
struct MatMulDims {
  int64_t m = 0, k = 0, n = 0;
  bool transpose_a = false;
  bool transpose_b = false;
  bool accumulate = false;
};
void MatMul(const MatMulDims& dims, const float* a, const float* b, float* c);

// The optimizers' updates over `n` elements (TensorFlow 1.x's formulas, see
// ps/optimizer.h). Slots are updated in place; `grad` is only read.
//   SGD:      var -= lr * grad
void SgdUpdate(float* var, const float* grad, int64_t n, float lr);
//   Momentum: accum = momentum * accum + grad;
//             var -= lr * accum, or with nesterov lr * (grad + momentum * accum)
void MomentumUpdate(float* var, const float* grad, float* accum, int64_t n, float lr, float momentum, bool nesterov);
//   Adagrad:  accum += grad^2; var -= lr * grad / sqrt(accum)
void AdagradUpdate(float* var, const float* grad, float* accum, int64_t n, float lr);
//   Adam:     m += (grad - m) * (1 - beta1); v += (grad^2 - v) * (1 - beta2);
//             var -= lr_t * m / (sqrt(v) + epsilon)   (lr_t: bias-corrected)
void AdamUpdate(float* var, const float* grad, float* m, float* v, int64_t n, float lr_t, float beta1, float beta2,
                float epsilon);
//   FTRL-Proximal, with p = -lr_power (sqrt when lr_power is -0.5):
//             accum_new = accum + grad^2
//             linear   += grad - (accum_new^p - accum^p) / lr * var
//             quadratic = accum_new^p / lr + 2 * l2
//             var       = |linear| > l1 ? (sign(linear) * l1 - linear) / quadratic : 0
//             accum     = accum_new
void FtrlUpdate(float* var, const float* grad, float* accum, float* linear, int64_t n, float lr, float l1, float l2,
                float lr_power);

}  // namespace kernels
}  // namespace cairn
