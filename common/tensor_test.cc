#include "common/tensor.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/variable_spec.h"
#include "common/wire_archive.h"

namespace cairn {
namespace {

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

bool AllBytesZero(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.raw());
  for (size_t i = 0; i < t.byte_size(); ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

// --- Shape -----------------------------------------------------------------

TEST(Shape, BehavesAsTheVectorItReplacesInlineAndSpilled) {
  // Up to kInlineRank dims in itself, beyond on the heap: the same either way.
  for (size_t rank : {size_t{0}, size_t{1}, Shape::kInlineRank, Shape::kInlineRank + 1, size_t{9}}) {
    std::vector<int64_t> v;
    Shape s;
    for (size_t i = 0; i < rank; ++i) {
      v.push_back(static_cast<int64_t>(10 + i));
      s.push_back(static_cast<int64_t>(10 + i));
    }
    ASSERT_EQ(s.size(), v.size());
    EXPECT_EQ(s.ToVector(), v);
    EXPECT_EQ(Shape(v), s);
    Shape copy = s;
    EXPECT_EQ(copy, s);
    if (rank > 0) copy.back() = -1;
    EXPECT_EQ(copy == s, rank == 0);
    copy.insert(copy.begin(), 7);
    v.insert(v.begin(), 7);
    if (rank > 0) v.back() = -1;
    EXPECT_EQ(copy.ToVector(), v) << "rank " << rank;
    copy.erase(copy.begin());
    v.erase(v.begin());
    EXPECT_EQ(copy.ToVector(), v);
    copy.resize(2);
    v.resize(2);
    EXPECT_EQ(copy.ToVector(), v);
  }
  EXPECT_EQ(Shape(3, 4), (Shape{4, 4, 4}));
  EXPECT_LT((Shape{1, 2}), (Shape{1, 3}));
  EXPECT_LT((Shape{1, 2}), (Shape{1, 2, 0}));
  EXPECT_EQ(NumElements(Shape{2, 3, 4}), 24);
  EXPECT_EQ(ShapeString(Shape{}), "[]");
}

// On the wire a Shape is what a std::vector<int64_t> was: peers built
// before Shape read it, and a forged rank is refused.
TEST(Shape, GoesOnTheWireAsTheVectorDidAndLoadsBounded) {
  const auto bytes_of = [](const auto& value) {
    std::ostringstream os;
    {
      cereal::BinaryOutputArchive ar(os);
      ar(value);
    }
    return os.str();
  };
  const Shape shape{128, 784, 3};
  const std::string wire = bytes_of(shape);
  EXPECT_EQ(wire, bytes_of(std::vector<int64_t>{128, 784, 3}));
  std::istringstream is(wire);
  cereal::BinaryInputArchive in(is);
  Shape back;
  LoadVector(in, back, wire::kMaxRank, "rank");
  EXPECT_EQ(back, shape);

  const std::string nine = bytes_of(std::vector<int64_t>(9, 1));
  std::istringstream is9(nine);
  cereal::BinaryInputArchive in9(is9);
  EXPECT_THROW(LoadVector(in9, back, wire::kMaxRank, "rank"), WireFormatError);
}

// --- Tensor ----------------------------------------------------------------

TEST(Tensor, ConstructionZeroFillsTheBuffer) {
  Tensor f(DType::kFloat32, {3, 5});
  EXPECT_EQ(f.dtype(), DType::kFloat32);
  EXPECT_EQ(f.shape(), (Shape{3, 5}));
  EXPECT_EQ(f.num_elements(), 15);
  EXPECT_TRUE(AllBytesZero(f));
  for (int64_t i = 0; i < f.num_elements(); ++i) EXPECT_EQ(f.data<float>()[i], 0.0f);

  Tensor l(DType::kInt64, {7});
  EXPECT_EQ(l.dtype(), DType::kInt64);
  EXPECT_TRUE(AllBytesZero(l));
  for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(l.data<int64_t>()[i], 0);
}

TEST(Tensor, ByteSizeIsElementsTimesDTypeSize) {
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4u);
  EXPECT_EQ(DTypeSize(DType::kInt64), 8u);
  EXPECT_EQ(Tensor(DType::kFloat32, {3, 5}).byte_size(), 60u);
  EXPECT_EQ(Tensor(DType::kInt64, {3, 5}).byte_size(), 120u);
  EXPECT_EQ(Tensor(DType::kFloat32, {}).byte_size(), 4u);
  EXPECT_EQ(Tensor(DType::kInt64, {0, 9}).byte_size(), 0u);
  EXPECT_EQ(Tensor(DType::kFloat32, {2, 3, 4}).byte_size(), 96u);
}

TEST(Tensor, RowsAndRowElementsForScalar1DAnd2D) {
  Tensor scalar(DType::kFloat32, {});
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.num_elements(), 1);
  EXPECT_EQ(scalar.rows(), 1);
  EXPECT_EQ(scalar.row_elements(), 1);

  Tensor vec(DType::kFloat32, {6});
  EXPECT_EQ(vec.rank(), 1);
  EXPECT_EQ(vec.rows(), 6);
  EXPECT_EQ(vec.row_elements(), 1);

  Tensor mat(DType::kFloat32, {4, 3});
  EXPECT_EQ(mat.rank(), 2);
  EXPECT_EQ(mat.dim(0), 4);
  EXPECT_EQ(mat.dim(1), 3);
  EXPECT_EQ(mat.rows(), 4);
  EXPECT_EQ(mat.row_elements(), 3);

  Tensor cube(DType::kInt64, {2, 3, 4});
  EXPECT_EQ(cube.rows(), 2);
  EXPECT_EQ(cube.row_elements(), 12);

  Tensor empty_rows(DType::kFloat32, {0, 3});
  EXPECT_EQ(empty_rows.rows(), 0);
  EXPECT_EQ(empty_rows.row_elements(), 0);
}

TEST(Tensor, DefaultConstructedIsEmptyFloat32OfShapeZero) {
  Tensor t;
  EXPECT_EQ(t.dtype(), DType::kFloat32);
  EXPECT_EQ(t.shape(), (Shape{0}));
  EXPECT_EQ(t.num_elements(), 0);
  EXPECT_EQ(t.byte_size(), 0u);
  EXPECT_EQ(t.rows(), 0);
}

TEST(Tensor, DataPointerIs64ByteAligned) {
  for (const Shape& shape : std::vector<Shape>{{}, {0}, {1}, {3}, {17, 5}, {64, 64}, {2, 3, 5}}) {
    for (DType dtype : {DType::kFloat32, DType::kInt64}) {
      Tensor t(dtype, shape);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u) << ShapeString(shape);
    }
  }
  Tensor c = Tensor(DType::kFloat32, {3, 3}).Clone();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.raw()) % 64, 0u);
}

TEST(Tensor, FromVectorCopiesTheValues) {
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  Tensor t = Tensor::FromVector({2, 3}, values);
  values[0] = 100;  // the tensor holds a copy
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], static_cast<float>(i + 1));
}

TEST(Tensor, CopyIsShallowAndSharesTheBuffer) {
  Tensor a = Tensor::FromVector({2, 2}, {1, 2, 3, 4});
  Tensor b = a;
  EXPECT_EQ(a.raw(), b.raw());
  EXPECT_EQ(a.owner().get(), b.owner().get());
  b.data<float>()[3] = 40;
  EXPECT_EQ(a.data<float>()[3], 40.0f);
}

TEST(Tensor, CopyKeepsTheBufferAliveAfterTheOriginalIsGone) {
  Tensor b;
  {
    Tensor a = Tensor::FromVector({3}, {7, 8, 9});
    b = a;
  }
  EXPECT_EQ(b.data<float>()[0], 7.0f);
  EXPECT_EQ(b.data<float>()[2], 9.0f);
}

TEST(Tensor, CloneIsADeepIndependentCopy) {
  Tensor a = Tensor::FromVector({2, 2}, {1, 2, 3, 4});
  Tensor c = a.Clone();
  EXPECT_NE(a.raw(), c.raw());
  EXPECT_NE(a.owner().get(), c.owner().get());
  EXPECT_TRUE(a.BitEqual(c));
  c.data<float>()[0] = -1;
  EXPECT_EQ(a.data<float>()[0], 1.0f);
  EXPECT_FALSE(a.BitEqual(c));

  Tensor empty(DType::kInt64, {0, 4});
  Tensor empty_clone = empty.Clone();
  EXPECT_TRUE(empty.BitEqual(empty_clone));
}

TEST(Tensor, SliceRowsViewsTheRightRowsAndSharesTheBuffer) {
  std::vector<float> values(5 * 3);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  Tensor t = Tensor::FromVector({5, 3}, values);

  Tensor s = t.SliceRows(1, 4);
  EXPECT_EQ(s.shape(), (Shape{3, 3}));
  EXPECT_EQ(s.dtype(), DType::kFloat32);
  EXPECT_EQ(s.num_elements(), 9);
  EXPECT_EQ(s.raw(), static_cast<const void*>(t.data<float>() + 3));
  EXPECT_EQ(s.owner().get(), t.owner().get());
  for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(s.data<float>()[i], static_cast<float>(3 + i));

  // Writes through the slice land in the original buffer, and vice versa.
  s.data<float>()[0] = -5;
  EXPECT_EQ(t.data<float>()[3], -5.0f);
  t.data<float>()[11] = -11;
  EXPECT_EQ(s.data<float>()[8], -11.0f);

  Tensor whole = t.SliceRows(0, 5);
  EXPECT_TRUE(whole.BitEqual(t));
  Tensor none = t.SliceRows(5, 5);
  EXPECT_EQ(none.shape(), (Shape{0, 3}));
  EXPECT_EQ(none.byte_size(), 0u);
}

TEST(Tensor, SliceRowsOfInt64And3DTensors) {
  Tensor t(DType::kInt64, {4, 2, 2});
  for (int64_t i = 0; i < 16; ++i) t.data<int64_t>()[i] = i * 10;
  Tensor s = t.SliceRows(2, 3);
  EXPECT_EQ(s.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(s.dtype(), DType::kInt64);
  for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(s.data<int64_t>()[i], (8 + i) * 10);
}

TEST(Tensor, SliceKeepsTheBufferAliveAfterTheOriginalIsGone) {
  Tensor s;
  {
    Tensor t = Tensor::FromVector({4}, {1, 2, 3, 4});
    s = t.SliceRows(2, 4);
  }
  EXPECT_EQ(s.data<float>()[0], 3.0f);
  EXPECT_EQ(s.data<float>()[1], 4.0f);
}

TEST(Tensor, BitEqualComparesDTypeShapeAndBytes) {
  Tensor a = Tensor::FromVector({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(a.BitEqual(a));
  EXPECT_TRUE(a.BitEqual(Tensor::FromVector({2, 2}, {1, 2, 3, 4})));
  EXPECT_FALSE(a.BitEqual(Tensor::FromVector({2, 2}, {1, 2, 3, 5})));
  EXPECT_FALSE(a.BitEqual(Tensor::FromVector({4}, {1, 2, 3, 4})));  // same bytes, other shape
  EXPECT_FALSE(a.BitEqual(Tensor::FromVector({1, 4}, {1, 2, 3, 4})));

  // Same bytes (all zero), other dtype.
  Tensor f(DType::kFloat32, {2});
  Tensor l(DType::kInt64, {1});
  EXPECT_FALSE(f.BitEqual(l));

  // Bitwise, not numeric: 0.0 and -0.0 differ, NaN equals the same NaN.
  EXPECT_FALSE(Tensor::FromVector({1}, {0.0f}).BitEqual(Tensor::FromVector({1}, {-0.0f})));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(Tensor::FromVector({1}, {nan}).BitEqual(Tensor::FromVector({1}, {nan})));

  // Empty tensors of the same shape are equal.
  EXPECT_TRUE(Tensor(DType::kFloat32, {0, 3}).BitEqual(Tensor(DType::kFloat32, {0, 3})));
  EXPECT_FALSE(Tensor(DType::kFloat32, {0, 3}).BitEqual(Tensor(DType::kFloat32, {0, 4})));
}

TEST(Tensor, FlatViewReadsAndWritesTheBuffer) {
  Tensor t = Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6});
  auto flat = t.flat();
  EXPECT_EQ(flat.size(), 6);
  EXPECT_EQ(flat.data(), t.data<float>());
  EXPECT_EQ(flat(4), 5.0f);
  EXPECT_FLOAT_EQ(flat.sum(), 21.0f);
  flat *= 2.0f;
  EXPECT_EQ(t.data<float>()[5], 12.0f);
  flat(0) = -1;
  EXPECT_EQ(t.data<float>()[0], -1.0f);

  const Tensor& ct = t;
  EXPECT_EQ(ct.flat()(1), 4.0f);
}

TEST(Tensor, MatrixViewIsRowMajorAndReadsAndWritesTheBuffer) {
  Tensor t = Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6});
  auto m = t.matrix();
  EXPECT_EQ(m.rows(), 2);
  EXPECT_EQ(m.cols(), 3);
  EXPECT_EQ(m(0, 2), 3.0f);
  EXPECT_EQ(m(1, 0), 4.0f);
  m(1, 2) = 60;
  EXPECT_EQ(t.data<float>()[5], 60.0f);
  m.row(0).setConstant(9);
  EXPECT_EQ(t.data<float>()[0], 9.0f);
  EXPECT_EQ(t.data<float>()[2], 9.0f);
  EXPECT_EQ(t.data<float>()[3], 4.0f);

  // A 3-D tensor is viewed as rows x (product of the other dims).
  Tensor cube(DType::kFloat32, {2, 2, 3});
  EXPECT_EQ(cube.matrix().rows(), 2);
  EXPECT_EQ(cube.matrix().cols(), 6);

  // A slice's matrix views only its rows.
  Tensor s = t.SliceRows(1, 2);
  EXPECT_EQ(s.matrix().rows(), 1);
  EXPECT_EQ(s.matrix()(0, 2), 60.0f);
  s.matrix()(0, 0) = -4;
  EXPECT_EQ(t.matrix()(1, 0), -4.0f);
}

TEST(Tensor, ViewUsesTheGivenBytesAndKeepsTheOwnerAlive) {
  auto storage = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4});
  std::weak_ptr<std::vector<float>> weak = storage;
  Tensor v = Tensor::View(DType::kFloat32, {2, 2}, storage, storage->data());
  EXPECT_EQ(v.raw(), storage->data());
  EXPECT_EQ(v.shape(), (Shape{2, 2}));
  EXPECT_EQ(v.num_elements(), 4);
  storage.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(v.matrix()(1, 1), 4.0f);
  v = Tensor();
  EXPECT_TRUE(weak.expired());
}

// --- Shapes and dtypes -----------------------------------------------------

TEST(Shape, NumElementsAndShapeString) {
  EXPECT_EQ(NumElements({}), 1);
  EXPECT_EQ(NumElements({0}), 0);
  EXPECT_EQ(NumElements({128, 10}), 1280);
  EXPECT_EQ(ShapeString({}), "[]");
  EXPECT_EQ(ShapeString({128, 10}), "[128, 10]");
  EXPECT_EQ(ShapeString({7}), "[7]");
}

TEST(ValidateShape, AcceptsShapesWithinTheLimit) {
  EXPECT_TRUE(ValidateShape({}, DType::kFloat32, 4).ok());
  EXPECT_TRUE(ValidateShape({0}, DType::kFloat32, 0).ok());
  EXPECT_TRUE(ValidateShape({10, 10}, DType::kFloat32, 400).ok());  // exactly at the limit
  EXPECT_TRUE(ValidateShape({10, 10}, DType::kInt64, 800).ok());
  EXPECT_TRUE(ValidateShape({1, 1, 1, 1, 1, 1, 1, 1}, DType::kFloat32, 4).ok());  // rank 8
  EXPECT_TRUE(ValidateShape({0, int64_t{1} << 62}, DType::kFloat32, 16).ok());   // zero elements
}

TEST(ValidateShape, RejectsShapesOverTheByteLimit) {
  EXPECT_EQ(ValidateShape({10, 10}, DType::kFloat32, 399).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateShape({10, 10}, DType::kInt64, 400).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateShape({}, DType::kInt64, 7).code(), StatusCode::kInvalidArgument);
}

TEST(ValidateShape, RejectsNegativeDimensions) {
  Status s = ValidateShape({4, -1}, DType::kFloat32, kNoLimit);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("negative"), std::string::npos) << s;
  EXPECT_FALSE(ValidateShape({-3}, DType::kInt64, kNoLimit).ok());
  // Two negatives whose product is positive are still rejected.
  EXPECT_FALSE(ValidateShape({-2, -2}, DType::kFloat32, kNoLimit).ok());
  // A negative dim after a zero dim is still rejected.
  EXPECT_FALSE(ValidateShape({0, -1}, DType::kFloat32, kNoLimit).ok());
}

TEST(ValidateShape, RejectsRankAboveEight) {
  Status s = ValidateShape(Shape(9, 1), DType::kFloat32, kNoLimit);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("rank"), std::string::npos) << s;
  EXPECT_FALSE(ValidateShape(Shape(100, 0), DType::kFloat32, kNoLimit).ok());
}

TEST(ValidateShape, RejectsOverflowingShapesWithoutOverflowing) {
  const int64_t big = int64_t{1} << 40;
  // 2^80 elements: a wrapping product would be 0 and look tiny.
  EXPECT_FALSE(ValidateShape({big, big}, DType::kFloat32, kNoLimit).ok());
  EXPECT_FALSE(ValidateShape({big, big}, DType::kInt64, uint64_t{1} << 62).ok());
  // 2^64 elements exactly: the product wraps to 0.
  EXPECT_FALSE(ValidateShape({int64_t{1} << 32, int64_t{1} << 32}, DType::kFloat32, kNoLimit).ok());
  // 2^62 float32 elements = 2^64 bytes: the byte count wraps to 0.
  EXPECT_FALSE(ValidateShape({int64_t{1} << 31, int64_t{1} << 31}, DType::kFloat32, kNoLimit).ok());
  // The largest dims.
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_FALSE(ValidateShape({max, max}, DType::kFloat32, kNoLimit).ok());
  EXPECT_FALSE(ValidateShape({max, 2}, DType::kFloat32, kNoLimit).ok());
  EXPECT_FALSE(ValidateShape({2, 2, 2, 2, 2, 2, 2, max}, DType::kInt64, kNoLimit).ok());
  // Within 64 bits but over a realistic limit.
  EXPECT_FALSE(ValidateShape({big, 4}, DType::kFloat32, uint64_t{4} << 30).ok());
}

TEST(DType, ParseDTypeAcceptsKnownNamesAndRejectsOthers) {
  StatusOr<DType> f = ParseDType("float32");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f, DType::kFloat32);
  StatusOr<DType> alias = ParseDType("float");
  ASSERT_TRUE(alias.ok());
  EXPECT_EQ(*alias, DType::kFloat32);
  StatusOr<DType> l = ParseDType("int64");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, DType::kInt64);

  for (const char* bad : {"", "float64", "int32", "Float32", "INT64", " float32", "float32 "}) {
    StatusOr<DType> r = ParseDType(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "'";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(DType, NamesRoundTripAndOnlyOneAndTwoAreValidBytes) {
  for (DType d : {DType::kFloat32, DType::kInt64}) {
    StatusOr<DType> r = ParseDType(DTypeName(d));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, d);
  }
  for (int raw = 0; raw < 256; ++raw) {
    EXPECT_EQ(IsValidDType(static_cast<uint8_t>(raw)), raw == 1 || raw == 2) << raw;
  }
  EXPECT_STREQ(DTypeName(static_cast<DType>(9)), "invalid");
}

// --- VariableSpec initializers ---------------------------------------------

VariableSpec MakeSpec(std::string name, Shape shape, InitKind kind, uint64_t seed) {
  VariableSpec spec;
  spec.name = std::move(name);
  spec.shape = std::move(shape);
  spec.init.kind = kind;
  spec.init.seed = seed;
  return spec;
}

Tensor InitWhole(const VariableSpec& spec) {
  Tensor t(spec.dtype, spec.shape);
  InitializeRows(spec, 0, &t);
  return t;
}

TEST(InitializeRows, IsDeterministic) {
  for (InitKind kind : {InitKind::kUniform, InitKind::kNormal, InitKind::kTruncatedNormal,
                        InitKind::kGlorotUniform, InitKind::kGlorotNormal}) {
    VariableSpec spec = MakeSpec("w", {10, 4}, kind, 1234);
    Tensor a = InitWhole(spec);
    Tensor b = InitWhole(spec);
    EXPECT_TRUE(a.BitEqual(b)) << InitKindName(kind);
  }
}

TEST(InitializeRows, IsIndependentOfHowTheRowsAreSplit) {
  for (InitKind kind : {InitKind::kGlorotUniform, InitKind::kUniform, InitKind::kNormal,
                        InitKind::kTruncatedNormal, InitKind::kGlorotNormal}) {
    SCOPED_TRACE(InitKindName(kind));
    VariableSpec spec = MakeSpec("w", {10, 4}, kind, 42);
    Tensor whole = InitWhole(spec);

    // Rows [0, 3) and [3, 10) initialized separately, in fresh tensors.
    Tensor first(DType::kFloat32, {3, 4});
    Tensor second(DType::kFloat32, {7, 4});
    InitializeRows(spec, 0, &first);
    InitializeRows(spec, 3, &second);
    EXPECT_TRUE(first.BitEqual(whole.SliceRows(0, 3)));
    EXPECT_TRUE(second.BitEqual(whole.SliceRows(3, 10)));

    // Also in slices of one tensor, last block first.
    Tensor pieced(DType::kFloat32, {10, 4});
    Tensor tail = pieced.SliceRows(3, 10);
    Tensor head = pieced.SliceRows(0, 3);
    InitializeRows(spec, 3, &tail);
    InitializeRows(spec, 0, &head);
    EXPECT_TRUE(pieced.BitEqual(whole));

    // And row by row.
    for (int64_t r = 0; r < 10; ++r) {
      Tensor row(DType::kFloat32, {1, 4});
      InitializeRows(spec, r, &row);
      EXPECT_TRUE(row.BitEqual(whole.SliceRows(r, r + 1))) << "row " << r;
    }
  }
}

TEST(InitializeRows, GlorotUniformLiesWithinTheGlorotLimit) {
  VariableSpec spec = MakeSpec("w", {100, 60}, InitKind::kGlorotUniform, 7);
  Tensor t = InitWhole(spec);
  const float limit = static_cast<float>(std::sqrt(6.0 / (100 + 60)));
  float lo = limit, hi = -limit;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    float v = t.data<float>()[i];
    ASSERT_GE(v, -limit) << i;
    ASSERT_LE(v, limit) << i;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  // It actually spreads over the range (not all zeros or a constant).
  EXPECT_LT(lo, -0.9f * limit);
  EXPECT_GT(hi, 0.9f * limit);

  // Small [10, 4] variable from the brief.
  VariableSpec small = MakeSpec("s", {10, 4}, InitKind::kGlorotUniform, 1);
  Tensor s = InitWhole(small);
  const float small_limit = static_cast<float>(std::sqrt(6.0 / 14.0));
  for (int64_t i = 0; i < s.num_elements(); ++i) {
    EXPECT_LE(std::fabs(s.data<float>()[i]), small_limit);
  }
}

TEST(InitializeRows, UniformLiesWithinMinvalAndMaxval) {
  VariableSpec spec = MakeSpec("u", {1000, 100}, InitKind::kUniform, 99);
  spec.init.minval = -2.0;
  spec.init.maxval = 3.0;
  Tensor t = InitWhole(spec);
  double sum = 0;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    float v = t.data<float>()[i];
    ASSERT_GE(v, -2.0f) << i;
    ASSERT_LT(v, 3.0f) << i;
    sum += v;
  }
  EXPECT_NEAR(sum / t.num_elements(), 0.5, 0.02);
}

TEST(InitializeRows, NormalHasTheRequestedMeanAndStddev) {
  VariableSpec spec = MakeSpec("n", {100000}, InitKind::kNormal, 2024);
  spec.init.mean = 1.5;
  spec.init.stddev = 0.25;
  Tensor t = InitWhole(spec);
  double sum = 0, sum_sq = 0;
  int beyond_two_sigma = 0;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    double v = t.data<float>()[i];
    sum += v;
    sum_sq += v * v;
    if (std::fabs(v - 1.5) > 0.5) ++beyond_two_sigma;
  }
  const double n = static_cast<double>(t.num_elements());
  const double mean = sum / n;
  const double stddev = std::sqrt(sum_sq / n - mean * mean);
  EXPECT_NEAR(mean, 1.5, 0.01);
  EXPECT_NEAR(stddev, 0.25, 0.01);
  // Not truncated: about 4.55% of a normal lies beyond 2 sigma.
  EXPECT_NEAR(beyond_two_sigma / n, 0.0455, 0.01);
}

TEST(InitializeRows, TruncatedNormalLiesWithinTwoStddev) {
  VariableSpec spec = MakeSpec("t", {200, 500}, InitKind::kTruncatedNormal, 5);
  spec.init.mean = -1.0;
  spec.init.stddev = 0.5;
  Tensor t = InitWhole(spec);
  double sum = 0;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    float v = t.data<float>()[i];
    ASSERT_LE(std::fabs(v - (-1.0f)), 1.0f + 1e-6f) << i;
    sum += v;
  }
  EXPECT_NEAR(sum / t.num_elements(), -1.0, 0.01);
}

TEST(InitializeRows, GlorotNormalLiesWithinTwoOfItsStddev) {
  VariableSpec spec = MakeSpec("g", {300, 200}, InitKind::kGlorotNormal, 3);
  Tensor t = InitWhole(spec);
  const double sigma = std::sqrt(2.0 / 500.0) / 0.87962566103423978;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    ASSERT_LE(std::fabs(t.data<float>()[i]), 2 * sigma * (1 + 1e-6)) << i;
  }
}

TEST(InitializeRows, DifferentSeedsGiveDifferentValues) {
  for (InitKind kind : {InitKind::kUniform, InitKind::kNormal, InitKind::kTruncatedNormal,
                        InitKind::kGlorotUniform, InitKind::kGlorotNormal}) {
    Tensor a = InitWhole(MakeSpec("w", {10, 4}, kind, 1));
    Tensor b = InitWhole(MakeSpec("w", {10, 4}, kind, 2));
    EXPECT_FALSE(a.BitEqual(b)) << InitKindName(kind);
    int same = 0;
    for (int i = 0; i < 40; ++i) same += a.data<float>()[i] == b.data<float>()[i];
    EXPECT_LT(same, 4) << InitKindName(kind);
  }
}

TEST(InitializeRows, ValuesDifferAcrossElements) {
  Tensor t = InitWhole(MakeSpec("w", {10, 4}, InitKind::kGlorotUniform, 1));
  // No two rows are identical (the element index, not just the row, is hashed).
  for (int64_t r = 1; r < 10; ++r) {
    EXPECT_FALSE(t.SliceRows(r, r + 1).BitEqual(t.SliceRows(0, 1).Clone())) << r;
  }
}

TEST(InitializeRows, ConstantKindsFillExactValues) {
  Tensor zeros = InitWhole(MakeSpec("z", {3, 2}, InitKind::kZeros, 0));
  Tensor ones = InitWhole(MakeSpec("o", {3, 2}, InitKind::kOnes, 0));
  VariableSpec c = MakeSpec("c", {3, 2}, InitKind::kConstant, 0);
  c.init.value = 2.5;
  Tensor constant = InitWhole(c);
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(zeros.data<float>()[i], 0.0f);
    EXPECT_EQ(ones.data<float>()[i], 1.0f);
    EXPECT_EQ(constant.data<float>()[i], 2.5f);
  }
  VariableSpec l = MakeSpec("step", {}, InitKind::kConstant, 0);
  l.dtype = DType::kInt64;
  l.init.value = 17;
  Tensor step = InitWhole(l);
  EXPECT_EQ(step.data<int64_t>()[0], 17);
}

TEST(InitKind, NamesRoundTripThroughParse) {
  for (int k = 0; k <= static_cast<int>(InitKind::kGlorotNormal); ++k) {
    InitKind kind = static_cast<InitKind>(k);
    StatusOr<InitKind> r = ParseInitKind(InitKindName(kind));
    ASSERT_TRUE(r.ok()) << k;
    EXPECT_EQ(*r, kind);
  }
  EXPECT_EQ(ParseInitKind("xavier").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseInitKind("").ok());
}

// --- ValidateSpec ----------------------------------------------------------

TEST(ValidateSpec, AcceptsAReasonableSpec) {
  VariableSpec spec = MakeSpec("dense/kernel:0", {784, 128}, InitKind::kGlorotUniform, 1);
  EXPECT_TRUE(ValidateSpec(spec).ok()) << ValidateSpec(spec);
  VariableSpec scalar = MakeSpec("global_step", {}, InitKind::kZeros, 0);
  scalar.dtype = DType::kInt64;
  EXPECT_TRUE(ValidateSpec(scalar).ok());
  VariableSpec longest = MakeSpec(std::string(256, 'n'), {1}, InitKind::kZeros, 0);
  EXPECT_TRUE(ValidateSpec(longest).ok());
}

TEST(ValidateSpec, RejectsAnEmptyName) {
  Status s = ValidateSpec(MakeSpec("", {1}, InitKind::kZeros, 0));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(ValidateSpec, RejectsAnOverlongName) {
  EXPECT_EQ(ValidateSpec(MakeSpec(std::string(257, 'n'), {1}, InitKind::kZeros, 0)).code(),
            StatusCode::kInvalidArgument);
  SpecLimits tight;
  tight.max_name_bytes = 4;
  EXPECT_TRUE(ValidateSpec(MakeSpec("abcd", {1}, InitKind::kZeros, 0), tight).ok());
  EXPECT_FALSE(ValidateSpec(MakeSpec("abcde", {1}, InitKind::kZeros, 0), tight).ok());
}

TEST(ValidateSpec, RejectsNonPrintableNames) {
  for (const std::string& name :
       {std::string("a b"), std::string("a\nb"), std::string("tab\t"), std::string("nul\0x", 5),
        std::string("del\x7f"), std::string("utf8\xc3\xa9"), std::string("\x01")}) {
    EXPECT_EQ(ValidateSpec(MakeSpec(name, {1}, InitKind::kZeros, 0)).code(), StatusCode::kInvalidArgument)
        << "name of " << name.size() << " bytes";
  }
}

TEST(ValidateSpec, RejectsNegativeDimensions) {
  Status s = ValidateSpec(MakeSpec("w", {4, -1}, InitKind::kZeros, 0));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'w'"), std::string::npos) << s;  // context names the variable
}

TEST(ValidateSpec, RejectsInvalidDTypeBytes) {
  for (int raw : {0, 3, 255}) {
    VariableSpec spec = MakeSpec("w", {4}, InitKind::kZeros, 0);
    spec.dtype = static_cast<DType>(raw);
    EXPECT_EQ(ValidateSpec(spec).code(), StatusCode::kInvalidArgument) << raw;
  }
}

TEST(ValidateSpec, RejectsInvalidInitializerKinds) {
  VariableSpec spec = MakeSpec("w", {4}, InitKind::kZeros, 0);
  spec.init.kind = static_cast<InitKind>(8);
  EXPECT_EQ(ValidateSpec(spec).code(), StatusCode::kInvalidArgument);
}

TEST(ValidateSpec, RejectsVariablesOverTheByteLimit) {
  // 2^30 float32 elements = 4 GiB: exactly the default limit.
  EXPECT_TRUE(ValidateSpec(MakeSpec("w", {int64_t{1} << 20, 1024}, InitKind::kZeros, 0)).ok());
  EXPECT_FALSE(ValidateSpec(MakeSpec("w", {(int64_t{1} << 20) + 1, 1024}, InitKind::kZeros, 0)).ok());
  EXPECT_FALSE(ValidateSpec(MakeSpec("w", {int64_t{1} << 40, int64_t{1} << 40}, InitKind::kZeros, 0)).ok());
}

TEST(VariableSpec, SizesAndDebugString) {
  VariableSpec spec = MakeSpec("w", {1000, 10}, InitKind::kGlorotUniform, 1);
  EXPECT_EQ(spec.num_elements(), 10000);
  EXPECT_EQ(spec.byte_size(), 40000u);
  EXPECT_EQ(spec.rows(), 1000);
  EXPECT_EQ(spec.row_bytes(), 40u);
  EXPECT_EQ(spec.DebugString(), "w float32[1000, 10] glorot_uniform(seed=1) trainable");
  VariableSpec scalar = MakeSpec("s", {}, InitKind::kZeros, 0);
  EXPECT_EQ(scalar.rows(), 1);
  EXPECT_EQ(scalar.row_bytes(), 4u);
}

}  // namespace
}  // namespace cairn
