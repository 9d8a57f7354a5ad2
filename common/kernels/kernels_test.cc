#include "common/kernels/kernels.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "common/kernels/cpu_level.h"

namespace cairn {
namespace {

using kernels::MatMulDims;

// Every level this CPU runs; each test runs its kernels at each and restores
// the detected one.
std::vector<CpuLevel> SupportedLevels() {
  std::vector<CpuLevel> out;
  for (CpuLevel l : {CpuLevel::kBaseline, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
    if (static_cast<int>(l) <= static_cast<int>(DetectedCpuLevel())) out.push_back(l);
  }
  return out;
}

class AtLevel {
 public:
  explicit AtLevel(CpuLevel level) { EXPECT_TRUE(SetCpuLevel(level).ok()); }
  ~AtLevel() { EXPECT_TRUE(SetCpuLevel(DetectedCpuLevel()).ok()); }
};

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// op(A)·op(B) in double, the reference.
std::vector<double> Reference(const MatMulDims& d, const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<double> c(d.m * d.n, 0.0);
  for (int64_t i = 0; i < d.m; ++i) {
    for (int64_t j = 0; j < d.n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < d.k; ++p) {
        const float av = d.transpose_a ? a[p * d.m + i] : a[i * d.k + p];
        const float bv = d.transpose_b ? b[j * d.k + p] : b[p * d.n + j];
        s += static_cast<double>(av) * bv;
      }
      c[i * d.n + j] = s;
    }
  }
  return c;
}

TEST(CpuLevel, NamesParseBackAndUnknownOnesAreRefused) {
  for (CpuLevel l : {CpuLevel::kBaseline, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
    StatusOr<CpuLevel> parsed = ParseCpuLevel(CpuLevelName(l));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, l);
  }
  StatusOr<CpuLevel> bad = ParseCpuLevel("sse9");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("baseline, avx2 or avx512"), std::string::npos);
}

TEST(CpuLevel, CanBeLoweredButNotRaisedPastTheCpu) {
  EXPECT_TRUE(SetCpuLevel(CpuLevel::kBaseline).ok());
  EXPECT_EQ(ActiveCpuLevel(), CpuLevel::kBaseline);
  EXPECT_NE(CpuLevelReport().find("baseline (detected: "), std::string::npos);
  EXPECT_TRUE(SetCpuLevel(DetectedCpuLevel()).ok());
  EXPECT_EQ(ActiveCpuLevel(), DetectedCpuLevel());
  if (DetectedCpuLevel() != CpuLevel::kAvx512) {
    Status st = SetCpuLevel(CpuLevel::kAvx512);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("does not support the avx512 kernels"), std::string::npos) << st;
  }
}

TEST(Kernels, MatMulAgreesWithADoubleReferenceAtEveryLevel) {
  const std::vector<MatMulDims> shapes = {
      {1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {128, 784, 256}, {64, 256, 10}, {5, 0, 4}, {0, 3, 2},
  };
  for (CpuLevel level : SupportedLevels()) {
    AtLevel at(level);
    for (MatMulDims d : shapes) {
      for (int flags = 0; flags < 8; ++flags) {
        d.transpose_a = flags & 1;
        d.transpose_b = flags & 2;
        d.accumulate = flags & 4;
        const std::vector<float> a = Random(d.m * d.k, 1 + flags), b = Random(d.k * d.n, 100 + flags);
        std::vector<float> c = Random(d.m * d.n, 7);
        const std::vector<float> before = c;
        kernels::MatMul(d, a.data(), b.data(), c.data());
        const std::vector<double> want = Reference(d, a, b);
        for (size_t i = 0; i < c.size(); ++i) {
          const double expected = want[i] + (d.accumulate ? before[i] : 0.0);
          // Each product's rounding error is at most 2^-24 of its size; the
          // inputs are in [-1, 1], so |error| ≤ k · 2^-23 plus the sum's.
          ASSERT_NEAR(c[i], expected, 1e-6 + 4e-7 * static_cast<double>(d.k))
              << CpuLevelName(level) << " m=" << d.m << " k=" << d.k << " n=" << d.n << " ta=" << d.transpose_a
              << " tb=" << d.transpose_b << " acc=" << d.accumulate << " at " << i;
        }
      }
    }
  }
}

// One optimizer step on copies of the same state, at an offset into its
// buffers (so arrays at every alignment are covered); the state after it.
struct State {
  std::vector<float> var, grad, s0, s1;
};

State MakeState(size_t n, uint32_t seed) {
  State s{Random(n, seed), Random(n, seed + 1), Random(n, seed + 2, 0.01f, 1.0f), Random(n, seed + 3)};
  return s;
}

enum class Kind { kSgd, kMomentum, kNesterov, kAdagrad, kAdam, kFtrl, kFtrlPow };

State Step(Kind kind, const State& in, size_t offset) {
  const size_t n = in.var.size();
  // The same values, `offset` floats into fresh buffers.
  std::vector<float> var(n + offset), grad(n + offset), s0(n + offset), s1(n + offset);
  std::memcpy(var.data() + offset, in.var.data(), n * 4);
  std::memcpy(grad.data() + offset, in.grad.data(), n * 4);
  std::memcpy(s0.data() + offset, in.s0.data(), n * 4);
  std::memcpy(s1.data() + offset, in.s1.data(), n * 4);
  float *v = var.data() + offset, *g = grad.data() + offset, *a = s0.data() + offset, *b = s1.data() + offset;
  switch (kind) {
    case Kind::kSgd: kernels::SgdUpdate(v, g, n, 0.1f); break;
    case Kind::kMomentum: kernels::MomentumUpdate(v, g, a, n, 0.1f, 0.9f, false); break;
    case Kind::kNesterov: kernels::MomentumUpdate(v, g, a, n, 0.1f, 0.9f, true); break;
    case Kind::kAdagrad: kernels::AdagradUpdate(v, g, a, n, 0.1f); break;
    case Kind::kAdam: kernels::AdamUpdate(v, g, /*m=*/b, /*v=*/a, n, 0.01f, 0.9f, 0.999f, 1e-7f); break;
    case Kind::kFtrl: kernels::FtrlUpdate(v, g, a, b, n, 0.1f, 0.01f, 0.001f, -0.5f); break;
    case Kind::kFtrlPow: kernels::FtrlUpdate(v, g, a, b, n, 0.1f, 0.01f, 0.001f, -0.6f); break;
  }
  State out;
  out.var.assign(v, v + n);
  out.grad.assign(g, g + n);
  out.s0.assign(a, a + n);
  out.s1.assign(b, b + n);
  return out;
}

// The scalar formulas of kernels.h in double: the optimizers compute these.
State DoubleReference(Kind kind, const State& in) {
  State out = in;
  for (size_t i = 0; i < in.var.size(); ++i) {
    double v = in.var[i], g = in.grad[i], a = in.s0[i], b = in.s1[i];
    switch (kind) {
      case Kind::kSgd: v -= 0.1 * g; break;
      case Kind::kMomentum: a = 0.9 * a + g; v -= 0.1 * a; break;
      case Kind::kNesterov: a = 0.9 * a + g; v -= 0.1 * (g + 0.9 * a); break;
      case Kind::kAdagrad: a += g * g; v -= 0.1 * g / std::sqrt(a); break;
      case Kind::kAdam: {  // Step passes m = s1, v = s0 (positive)
        b += (g - b) * (1 - 0.9);
        a += (g * g - a) * (1 - 0.999);
        v -= 0.01 * b / (std::sqrt(a) + 1e-7);
        break;
      }
      case Kind::kFtrl:
      case Kind::kFtrlPow: {
        const double p = kind == Kind::kFtrl ? 0.5 : 0.6;
        const double na = a + g * g;
        b += g - (std::pow(na, p) - std::pow(a, p)) / 0.1 * v;
        const double q = std::pow(na, p) / 0.1 + 2 * 0.001;
        v = std::fabs(b) > 0.01 ? ((b > 0 ? 0.01 : -0.01) - b) / q : 0.0;
        a = na;
        break;
      }
    }
    out.var[i] = v;
    out.s0[i] = a;
    out.s1[i] = b;
  }
  return out;
}

void ExpectSameBits(const std::vector<float>& x, const std::vector<float>& y, const std::string& what) {
  ASSERT_EQ(x.size(), y.size());
  EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * 4), 0) << what;
}

TEST(Kernels, OptimizerUpdatesAreBitIdenticalAtEveryLevelAndAlignment) {
  const char* names[] = {"sgd", "momentum", "nesterov", "adagrad", "adam", "ftrl", "ftrl lr_power -0.6"};
  for (int k = 0; k <= static_cast<int>(Kind::kFtrlPow); ++k) {
    const Kind kind = static_cast<Kind>(k);
    for (size_t n : {1, 7, 16, 33, 1000}) {
      const State in = MakeState(n, 10 + k);
      const State first = [&] {
        AtLevel at(CpuLevel::kBaseline);
        return Step(kind, in, 0);
      }();
      // Against the double reference: the formulas are the documented ones.
      const State ref = DoubleReference(kind, in);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(first.var[i], ref.var[i], 1e-4 * (1 + std::fabs(ref.var[i]))) << names[k] << " at " << i;
        ASSERT_NEAR(first.s0[i], ref.s0[i], 1e-4 * (1 + std::fabs(ref.s0[i]))) << names[k] << " at " << i;
        ASSERT_NEAR(first.s1[i], ref.s1[i], 1e-4 * (1 + std::fabs(ref.s1[i]))) << names[k] << " at " << i;
      }
      for (CpuLevel level : SupportedLevels()) {
        AtLevel at(level);
        for (size_t offset : {0, 1, 3, 5, 16}) {
          const State got = Step(kind, in, offset);
          const std::string what = std::string(names[k]) + " n=" + std::to_string(n) + " at " +
                                   CpuLevelName(level) + " offset " + std::to_string(offset);
          ExpectSameBits(got.var, first.var, what + " (var)");
          ExpectSameBits(got.s0, first.s0, what + " (slot 0)");
          ExpectSameBits(got.s1, first.s1, what + " (slot 1)");
        }
      }
    }
  }
}

}  // namespace
}  // namespace cairn
