#include "common/tensor.h"

#include "common/aligned_buffer.h"

#include <cstring>
#include <new>
#include <sstream>

namespace cairn {
namespace {

std::shared_ptr<void> AllocateAligned(size_t bytes, bool zero) { return AllocateAlignedBuffer(bytes, zero); }

// The bytes of every tensor of zero elements: nothing to allocate, own or
// free, and never written (there is nothing to write).
alignas(64) unsigned char g_no_bytes[64];

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kInt64: return 8;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kInt64: return "int64";
  }
  return "invalid";
}

StatusOr<DType> ParseDType(const std::string& name) {
  if (name == "float32" || name == "float") return DType::kFloat32;
  if (name == "int64") return DType::kInt64;
  return InvalidArgument("unknown dtype '" + name + "' (expected float32 or int64)");
}

bool IsValidDType(uint8_t raw) { return raw == 1 || raw == 2; }

int64_t NumElements(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

Status ValidateShape(const Shape& shape, DType dtype, uint64_t max_bytes) {
  if (!IsValidDType(static_cast<uint8_t>(dtype))) return InvalidArgument("invalid dtype");
  if (shape.size() > 8) return InvalidArgument("rank " + std::to_string(shape.size()) + " exceeds 8");
  uint64_t elements = 1;
  const uint64_t max_elements = max_bytes / DTypeSize(dtype);
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + ShapeString(shape));
    if (d != 0 && elements > max_elements / static_cast<uint64_t>(d)) {
      return InvalidArgument("shape " + ShapeString(shape) + " exceeds " + std::to_string(max_bytes) + " bytes");
    }
    elements *= static_cast<uint64_t>(d);
  }
  if (elements > max_elements) {
    return InvalidArgument("shape " + ShapeString(shape) + " exceeds " + std::to_string(max_bytes) + " bytes");
  }
  return Status::OK();
}

Tensor::Tensor() : data_(g_no_bytes) {}

Tensor::Tensor(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)), num_elements_(NumElements(shape_)) {
  if (byte_size() == 0) {
    data_ = g_no_bytes;
    return;
  }
  auto buffer = AllocateAligned(byte_size(), /*zero=*/true);
  data_ = buffer.get();
  owner_ = std::move(buffer);
}

Tensor Tensor::View(DType dtype, Shape shape, std::shared_ptr<const void> owner, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.num_elements_ = NumElements(t.shape_);
  t.owner_ = std::move(owner);
  t.data_ = data;
  return t;
}

Tensor Tensor::FromVector(Shape shape, const std::vector<float>& values) {
  Tensor t(DType::kFloat32, std::move(shape));
  assert(static_cast<int64_t>(values.size()) == t.num_elements());
  std::memcpy(t.raw(), values.data(), t.byte_size());
  return t;
}

Tensor Tensor::SliceRows(int64_t begin, int64_t end) const {
  assert(rank() >= 1 && begin >= 0 && begin <= end && end <= rows());
  Shape s = shape();
  s[0] = end - begin;
  const size_t row_bytes = row_elements() * DTypeSize(dtype_);
  return View(dtype_, std::move(s), owner_, static_cast<char*>(data_) + begin * row_bytes);
}

Tensor Tensor::Uninitialized(DType dtype, Shape shape) {
  const int64_t n = NumElements(shape);
  if (n == 0) return View(dtype, std::move(shape), nullptr, g_no_bytes);
  auto buffer = AllocateAligned(n * DTypeSize(dtype), /*zero=*/false);
  return View(dtype, std::move(shape), buffer, buffer.get());
}

Tensor Tensor::Clone() const {
  Tensor t = Uninitialized(dtype_, shape());
  if (byte_size() > 0) std::memcpy(t.data_, data_, byte_size());
  return t;
}

bool Tensor::BitEqual(const Tensor& other) const {
  return dtype_ == other.dtype_ && shape() == other.shape() &&
         (byte_size() == 0 || std::memcmp(data_, other.data_, byte_size()) == 0);
}

}  // namespace cairn
