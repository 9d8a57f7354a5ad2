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
#include <cstdlib>
#include <new>

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

// The blocks Eigen's matrix product packs its operands into, kept per
// thread and grown to the largest product it has run. Eigen's own product
// declares them on the stack up to EIGEN_STACK_ALLOCATION_LIMIT (128 KiB)
// and mallocs and frees them for every product above that: twice a step
// for an MLP's first layer (784 x 256 at batch 128), and for every product
// of layers a thousand wide.
class PackBuffer {
 public:
  ~PackBuffer() { std::free(data_); }
  float* Reserve(Eigen::Index floats) {
    if (floats > floats_) {
      std::free(data_);
      const size_t bytes = (static_cast<size_t>(floats) * sizeof(float) + 63) / 64 * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (data_ == nullptr) throw std::bad_alloc();
      floats_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  Eigen::Index floats_ = 0;
};
thread_local PackBuffer t_pack_lhs, t_pack_rhs;

// Eigen's blocking of a product into a row-major result (the sizes its own
// product would choose), over this thread's kept buffers.
class KeptBlocking
    : public Eigen::internal::gemm_blocking_space<Eigen::RowMajor, float, float, Eigen::Dynamic, Eigen::Dynamic,
                                                  Eigen::Dynamic> {
 public:
  KeptBlocking(Eigen::Index m, Eigen::Index n, Eigen::Index k) : gemm_blocking_space(m, n, k, 1, true) {
    this->m_blockA = t_pack_lhs.Reserve(this->mc() * this->kc());
    this->m_blockB = t_pack_rhs.Reserve(this->kc() * this->nc());
  }
  ~KeptBlocking() {  // the thread's buffers: not for Eigen to free
    this->m_blockA = nullptr;
    this->m_blockB = nullptr;
  }
};

// C (row-major, m x n) += A (m x k) B (k x n), each operand in its storage
// order with its outer stride: Eigen's general product, the kernel its own
// operator* runs at these sizes.
template <int LhsOrder, int RhsOrder>
void Gemm(const MatMulDims& d, const float* a, Eigen::Index lda, const float* b, Eigen::Index ldb, float* c) {
  KeptBlocking blocking(d.m, d.n, d.k);
  Eigen::internal::general_matrix_matrix_product<Eigen::Index, float, LhsOrder, false, float, RhsOrder, false,
                                                 Eigen::RowMajor, 1>::run(d.m, d.n, d.k, a, lda, b, ldb, c, 1, d.n,
                                                                          1.0f, blocking);
}

void MatMulImpl(const MatMulDims& d, const float* a, const float* b, float* c) {
  Map out(c, d.m, d.n);
  if (d.k == 0) {  // an empty sum: Eigen's product would not touch C
    if (!d.accumulate) out.setZero();
    return;
  }
  // Where Eigen's operator* would run its general product (not a
  // matrix-vector product, not its coefficient loop for tiny sizes), run it
  // with kept blocks: the same kernel, blocked the same way.
  if (d.m > 1 && d.n > 1 && d.k + d.m + d.n >= EIGEN_GEMM_TO_COEFFBASED_THRESHOLD) {
    if (!d.accumulate) out.setZero();
    constexpr int kRow = Eigen::RowMajor, kCol = Eigen::ColMajor;
    if (d.transpose_a && d.transpose_b) {
      Gemm<kCol, kCol>(d, a, d.m, b, d.k, c);
    } else if (d.transpose_a) {
      Gemm<kCol, kRow>(d, a, d.m, b, d.n, c);
    } else if (d.transpose_b) {
      Gemm<kRow, kCol>(d, a, d.k, b, d.k, c);
    } else {
      Gemm<kRow, kRow>(d, a, d.k, b, d.n, c);
    }
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
