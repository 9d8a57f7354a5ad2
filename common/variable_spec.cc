#include "common/variable_spec.h"

#include <cmath>
#include <sstream>

namespace cairn {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A uniform double in (0, 1) for (seed, index, draw): counter-based, so any
// element can be produced without producing the ones before it.
double Uniform01(uint64_t seed, uint64_t index, uint64_t draw) {
  uint64_t h = SplitMix64(seed ^ SplitMix64(index * 8 + draw));
  return (static_cast<double>(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double Normal01(uint64_t seed, uint64_t index, uint64_t draw) {
  double u1 = Uniform01(seed, index, 2 * draw), u2 = Uniform01(seed, index, 2 * draw + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

double TruncatedNormal01(uint64_t seed, uint64_t index) {
  for (uint64_t draw = 0; draw < 3; ++draw) {
    double z = Normal01(seed, index, draw);
    if (std::fabs(z) <= 2.0) return z;
  }
  return 0.0;  // three draws outside 2σ: probability ~1e-4, clamp to the mean
}

void FanInOut(const Shape& shape, double* fan_in, double* fan_out) {
  if (shape.empty()) { *fan_in = *fan_out = 1; return; }
  if (shape.size() == 1) { *fan_in = *fan_out = static_cast<double>(shape[0]); return; }
  double receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i) receptive *= static_cast<double>(shape[i]);
  *fan_in = static_cast<double>(shape[0]) * receptive;
  *fan_out = static_cast<double>(shape[1]) * receptive;
}

}  // namespace

double InitialElement(const VariableSpec& spec, uint64_t index) {
  const InitializerSpec& in = spec.init;
  switch (in.kind) {
    case InitKind::kZeros: return 0.0;
    case InitKind::kOnes: return 1.0;
    case InitKind::kConstant: return in.value;
    case InitKind::kUniform: return in.minval + (in.maxval - in.minval) * Uniform01(in.seed, index, 0);
    case InitKind::kNormal: return in.mean + in.stddev * Normal01(in.seed, index, 0);
    case InitKind::kTruncatedNormal: return in.mean + in.stddev * TruncatedNormal01(in.seed, index);
    case InitKind::kGlorotUniform: {
      double fi, fo;
      FanInOut(spec.shape, &fi, &fo);
      double limit = std::sqrt(6.0 / (fi + fo));
      return -limit + 2 * limit * Uniform01(in.seed, index, 0);
    }
    case InitKind::kGlorotNormal: {
      double fi, fo;
      FanInOut(spec.shape, &fi, &fo);
      // 0.8796 corrects the variance lost to truncation at 2σ (as Keras does).
      return std::sqrt(2.0 / (fi + fo)) / 0.87962566103423978 * TruncatedNormal01(in.seed, index);
    }
  }
  return 0.0;
}

namespace {

bool IsPrintableName(const std::string& name) {
  for (unsigned char c : name) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

const char* InitKindName(InitKind kind) {
  switch (kind) {
    case InitKind::kZeros: return "zeros";
    case InitKind::kOnes: return "ones";
    case InitKind::kConstant: return "constant";
    case InitKind::kUniform: return "uniform";
    case InitKind::kNormal: return "normal";
    case InitKind::kTruncatedNormal: return "truncated_normal";
    case InitKind::kGlorotUniform: return "glorot_uniform";
    case InitKind::kGlorotNormal: return "glorot_normal";
  }
  return "invalid";
}

StatusOr<InitKind> ParseInitKind(const std::string& name) {
  for (int k = 0; k <= static_cast<int>(InitKind::kGlorotNormal); ++k) {
    if (name == InitKindName(static_cast<InitKind>(k))) return static_cast<InitKind>(k);
  }
  return InvalidArgument("unknown initializer '" + name +
                         "' (zeros, ones, constant, uniform, normal, truncated_normal, "
                         "glorot_uniform, glorot_normal)");
}

std::string VariableSpec::DebugString() const {
  std::ostringstream os;
  os << name << " " << DTypeName(dtype) << ShapeString(shape) << " " << InitKindName(init.kind)
     << "(seed=" << init.seed << ")" << (trainable ? " trainable" : " non-trainable");
  return os.str();
}

Status ValidateSpec(const VariableSpec& spec, const SpecLimits& limits) {
  if (spec.name.empty()) return InvalidArgument("variable name is empty");
  if (spec.name.size() > limits.max_name_bytes) {
    return InvalidArgument("variable name of " + std::to_string(spec.name.size()) + " bytes exceeds " +
                           std::to_string(limits.max_name_bytes));
  }
  if (!IsPrintableName(spec.name)) return InvalidArgument("variable name has non-printable characters");
  if (!IsValidDType(static_cast<uint8_t>(spec.dtype))) {
    return InvalidArgument("variable '" + spec.name + "' has an invalid dtype");
  }
  if (static_cast<uint8_t>(spec.init.kind) > static_cast<uint8_t>(InitKind::kGlorotNormal)) {
    return InvalidArgument("variable '" + spec.name + "' has an invalid initializer");
  }
  Status s = ValidateShape(spec.shape, spec.dtype, limits.max_variable_bytes);
  if (!s.ok()) return s.WithContext("variable '" + spec.name + "'");
  return Status::OK();
}

void InitializeRows(const VariableSpec& spec, int64_t row_begin, Tensor* out) {
  const int64_t per_row = spec.rows() == 0 ? 0 : spec.num_elements() / spec.rows();
  const uint64_t first = static_cast<uint64_t>(row_begin * per_row);
  const int64_t n = out->num_elements();
  if (spec.dtype == DType::kInt64) {
    int64_t* p = out->data<int64_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int64_t>(InitialElement(spec, first + i));
  } else {
    float* p = out->data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(InitialElement(spec, first + i));
  }
}

}  // namespace cairn
