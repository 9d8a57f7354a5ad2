// Internal to common/kernels: the kernels' one definition, compiled once per
// CpuLevel by kernels_<level>.cc with that level's instruction flags.
//
// A kernels_<level>.cc defines, before including this file:
//   Eigen                 as a namespace of that level's own (e.g.
//                         CairnEigenAvx2), so that Eigen's templates built
//                         with AVX-512 never stand in for the baseline's at
//                         link time (the one-definition rule would let the
//                         linker keep either);
//   CAIRN_KERNEL_TABLE    the name of the table it defines (kernel_table.h).
// Everything else here has internal linkage. The check_kernel_symbols test
// verifies that these objects define no other global symbol.
//
// The optimizer loops are plain C++ that the compiler vectorizes at -O3;
// the files are compiled with -ffp-contract=off and -fno-math-errno, so
// every lane and the scalar tail evaluate the same correctly rounded
// operations (see kernels.h).
#pragma once

#if !defined(CAIRN_KERNEL_TABLE)
#error "define CAIRN_KERNEL_TABLE (and Eigen) before including kernels_impl.h"
#endif

#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "common/kernels/kernel_table.h"

namespace cairn {
namespace kernels {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

template <class A, class B>
void Product(const A& a, const B& b, Map& c, bool accumulate) {
  if (accumulate) {
    c.noalias() += a * b;
  } else {
    c.noalias() = a * b;
  }
}

void MatMulImpl(const MatMulDims& d, const float* a, const float* b, float* c) {
  Map out(c, d.m, d.n);
  if (d.k == 0) {  // an empty sum: Eigen's product would not touch C
    if (!d.accumulate) out.setZero();
    return;
  }
  const ConstMap am(a, d.transpose_a ? d.k : d.m, d.transpose_a ? d.m : d.k);
  const ConstMap bm(b, d.transpose_b ? d.n : d.k, d.transpose_b ? d.k : d.n);
  if (d.transpose_a && d.transpose_b) {
    Product(am.transpose(), bm.transpose(), out, d.accumulate);
  } else if (d.transpose_a) {
    Product(am.transpose(), bm, out, d.accumulate);
  } else if (d.transpose_b) {
    Product(am, bm.transpose(), out, d.accumulate);
  } else {
    Product(am, bm, out, d.accumulate);
  }
}

void SgdImpl(float* __restrict var, const float* __restrict grad, int64_t n, float lr) {
  for (int64_t i = 0; i < n; ++i) var[i] = var[i] - lr * grad[i];
}

void MomentumImpl(float* __restrict var, const float* __restrict grad, float* __restrict accum, int64_t n, float lr,
                  float momentum, bool nesterov) {
  if (nesterov) {
    for (int64_t i = 0; i < n; ++i) {
      const float a = momentum * accum[i] + grad[i];
      accum[i] = a;
      var[i] = var[i] - lr * (grad[i] + momentum * a);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float a = momentum * accum[i] + grad[i];
      accum[i] = a;
      var[i] = var[i] - lr * a;
    }
  }
}

void AdagradImpl(float* __restrict var, const float* __restrict grad, float* __restrict accum, int64_t n, float lr) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float a = accum[i] + g * g;
    accum[i] = a;
    var[i] = var[i] - (lr * g) / std::sqrt(a);
  }
}

void AdamImpl(float* __restrict var, const float* __restrict grad, float* __restrict m, float* __restrict v,
              int64_t n, float lr_t, float beta1, float beta2, float epsilon) {
  const float one_minus_beta1 = 1.0f - beta1;
  const float one_minus_beta2 = 1.0f - beta2;
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = m[i] + (g - m[i]) * one_minus_beta1;
    const float vi = v[i] + (g * g - v[i]) * one_minus_beta2;
    m[i] = mi;
    v[i] = vi;
    var[i] = var[i] - (lr_t * mi) / (std::sqrt(vi) + epsilon);
  }
}

// One FTRL step; `power(x)` is x^-lr_power.
template <class Power>
void FtrlLoop(float* __restrict var, const float* __restrict grad, float* __restrict accum, float* __restrict linear,
              int64_t n, float lr, float l1, float l2, Power power) {
  const float two_l2 = 2.0f * l2;
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i];
    const float old_accum = accum[i];
    const float new_accum = old_accum + g * g;
    const float p_new = power(new_accum);
    const float lin = linear[i] + (g - ((p_new - power(old_accum)) / lr) * var[i]);
    linear[i] = lin;
    const float quadratic = p_new / lr + two_l2;
    const float sign_l1 = lin > 0.0f ? l1 : (lin < 0.0f ? -l1 : 0.0f);
    var[i] = std::fabs(lin) > l1 ? (sign_l1 - lin) / quadratic : 0.0f;
    accum[i] = new_accum;
  }
}

void FtrlImpl(float* var, const float* grad, float* accum, float* linear, int64_t n, float lr, float l1, float l2,
              float lr_power) {
  if (lr_power == -0.5f) {
    FtrlLoop(var, grad, accum, linear, n, lr, l1, l2, [](float x) { return std::sqrt(x); });
  } else {
    const float exponent = -lr_power;
    FtrlLoop(var, grad, accum, linear, n, lr, l1, l2, [exponent](float x) { return std::pow(x, exponent); });
  }
}

}  // namespace

namespace internal {
extern const KernelTable CAIRN_KERNEL_TABLE;
const KernelTable CAIRN_KERNEL_TABLE = {MatMulImpl, SgdImpl, MomentumImpl, AdagradImpl, AdamImpl, FtrlImpl};
}  // namespace internal

}  // namespace kernels
}  // namespace cairn
