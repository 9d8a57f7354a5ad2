// VariableSpec: what a variable is (name, shape, dtype, initializer,
// trainable), and the seeded initializers that fill it.
//
// Initial values are a pure function of (spec, element index): a shard
// holding rows [b, e) of a variable initializes exactly the values those rows
// would have in the whole variable, whatever the number of servers.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/wire_archive.h"
#include "common/tensor.h"

namespace cairn {

enum class InitKind : uint8_t {
  kZeros = 0,
  kOnes = 1,
  kConstant = 2,
  kUniform = 3,          // U[minval, maxval)
  kNormal = 4,           // N(mean, stddev)
  kTruncatedNormal = 5,  // N(mean, stddev) redrawn outside 2 stddev
  kGlorotUniform = 6,    // U[-l, l), l = sqrt(6 / (fan_in + fan_out))
  kGlorotNormal = 7,     // truncated N(0, sqrt(2 / (fan_in + fan_out)))
};

const char* InitKindName(InitKind kind);
StatusOr<InitKind> ParseInitKind(const std::string& name);

struct InitializerSpec {
  InitKind kind = InitKind::kZeros;
  double value = 0.0;   // kConstant
  double minval = -0.05, maxval = 0.05;  // kUniform
  double mean = 0.0, stddev = 0.05;      // kNormal, kTruncatedNormal
  uint64_t seed = 0;

  template <class Archive> void serialize(Archive& ar) {
    ar(kind, value, minval, maxval, mean, stddev, seed);
  }
  bool operator==(const InitializerSpec&) const = default;
};

struct VariableSpec {
  std::string name;
  Shape shape;
  DType dtype = DType::kFloat32;
  InitializerSpec init;
  bool trainable = true;

  int64_t num_elements() const { return NumElements(shape); }
  uint64_t byte_size() const { return static_cast<uint64_t>(num_elements()) * DTypeSize(dtype); }
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  uint64_t row_bytes() const { return rows() == 0 ? 0 : byte_size() / rows(); }

  template <class Archive> void save(Archive& ar) const { ar(name, shape, dtype, init, trainable); }
  template <class Archive> void load(Archive& ar) {
    LoadString(ar, name, wire::kMaxName, "variable name");
    LoadVector(ar, shape, wire::kMaxRank, "shape rank");
    ar(dtype, init);
    LoadBool(ar, trainable, "trainable");
  }
  bool operator==(const VariableSpec&) const = default;
  // "w float32[1000, 10] glorot_uniform(seed=1) trainable".
  std::string DebugString() const;
};

// Limits on what a spec may declare; every spec from the wire is checked.
struct SpecLimits {
  size_t max_name_bytes = 256;
  uint64_t max_variable_bytes = uint64_t{4} << 30;
};

// Checks name (non-empty, printable, bounded), shape, dtype and initializer.
Status ValidateSpec(const VariableSpec& spec, const SpecLimits& limits = {});

// Fills `out` (rows [row_begin, row_begin + out->rows()) of the variable) with
// the spec's initial values. `out` must have the spec's dtype and row size.
void InitializeRows(const VariableSpec& spec, int64_t row_begin, Tensor* out);

// The initial value of element `index` (row-major) of the variable: a pure
// function of (spec.init, spec.shape for the Glorot kinds, index).
double InitialElement(const VariableSpec& spec, uint64_t index);

}  // namespace cairn
