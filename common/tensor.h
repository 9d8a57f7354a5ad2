// Tensor: a shape, a dtype and a contiguous, 64-byte-aligned buffer.
//
// Copies are shallow: a copied Tensor shares its buffer, like TensorFlow's.
// Use Clone() for an independent copy. A Tensor may also view bytes owned by
// something else (a received frame, a shard's buffer); it keeps that owner
// alive. Tensors are not synchronized: sharing one between threads that write
// it is the caller's responsibility.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "common/shape.h"
#include "common/status.h"

namespace cairn {

enum class DType : uint8_t { kFloat32 = 1, kInt64 = 2 };

size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);
// "float32" / "int64" → DType; InvalidArgument otherwise.
StatusOr<DType> ParseDType(const std::string& name);
bool IsValidDType(uint8_t raw);


// Product of dims; 1 for a scalar.
int64_t NumElements(const Shape& shape);
// "[128, 10]".
std::string ShapeString(const Shape& shape);
// Checks rank ≤ 8, every dim ≥ 0, and total bytes ≤ max_bytes.
Status ValidateShape(const Shape& shape, DType dtype, uint64_t max_bytes);

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::kFloat32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::kInt64; };

class Tensor {
 public:
  using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

  // An empty float32 tensor of shape [0]. Allocates nothing (a Session
  // makes one per node per Run), as no tensor of zero elements does.
  Tensor();
  // A zero-filled tensor that owns its buffer.
  Tensor(DType dtype, Shape shape);
  // A tensor over `data`, which `owner` keeps alive. `data` must be aligned
  // for dtype and hold NumElements(shape) * DTypeSize(dtype) bytes.
  static Tensor View(DType dtype, Shape shape, std::shared_ptr<const void> owner, void* data);
  // A tensor whose bytes are not initialized: for a caller about to
  // overwrite every one of them (skips a pass over the memory).
  static Tensor Uninitialized(DType dtype, Shape shape);
  // A float32 tensor holding `values` (copied).
  static Tensor FromVector(Shape shape, const std::vector<float>& values);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape()[i]; }
  int rank() const { return static_cast<int>(shape().size()); }
  int64_t num_elements() const { return num_elements_; }
  size_t byte_size() const { return num_elements_ * DTypeSize(dtype_); }
  // Rows of dim 0 (1 for a scalar) and elements per row.
  int64_t rows() const { return shape().empty() ? 1 : shape()[0]; }
  int64_t row_elements() const { return rows() == 0 ? 0 : num_elements_ / rows(); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T> T* data() { assert(DTypeOf<T>::value == dtype_); return static_cast<T*>(data_); }
  template <typename T> const T* data() const { assert(DTypeOf<T>::value == dtype_); return static_cast<const T*>(data_); }

  // Flat float32 view of every element.
  Eigen::Map<Eigen::VectorXf> flat() { return {data<float>(), num_elements_}; }
  Eigen::Map<const Eigen::VectorXf> flat() const { return {data<float>(), num_elements_}; }
  // float32 view as rows() x row_elements(), row-major.
  Eigen::Map<RowMatrix> matrix() { return {data<float>(), rows(), row_elements()}; }
  Eigen::Map<const RowMatrix> matrix() const { return {data<float>(), rows(), row_elements()}; }

  // Rows [begin, end) of dim 0 as a tensor sharing this buffer.
  Tensor SliceRows(int64_t begin, int64_t end) const;
  // An independent deep copy.
  Tensor Clone() const;
  // True when dtype, shape and every byte agree.
  bool BitEqual(const Tensor& other) const;
  // The buffer's owner, for callers that must keep the bytes alive (async I/O).
  const std::shared_ptr<const void>& owner() const { return owner_; }

 private:
  DType dtype_ = DType::kFloat32;
  Shape shape_{0};
  int64_t num_elements_ = 0;
  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
};

}  // namespace cairn
