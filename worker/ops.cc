#include "worker/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/kernels/kernels.h"
#include "common/sparse_spec.h"

namespace cairn {
namespace {

using RowMatrix = Tensor::RowMatrix;
using ConstMap = Eigen::Map<const Eigen::VectorXf>;

// How one side of a binary elementwise op lines up with the output.
enum class Broadcast { kFull, kScalar, kRow };

Broadcast Classify(const Tensor& side, const Tensor& out) {
  if (side.num_elements() == out.num_elements() && side.shape().size() == out.shape().size()) return Broadcast::kFull;
  if (side.num_elements() == 1) return Broadcast::kScalar;
  return Broadcast::kRow;  // a vector of the output's last dimension
}

StatusOr<Shape> RuntimeBroadcast(const Node& node, const Tensor& a, const Tensor& b) {
  StatusOr<Shape> s = BroadcastShape(a.shape(), b.shape());
  if (!s.ok()) return s.status().WithContext("node '" + node.name + "'");
  return s;
}

// out = f(a, b) over rows of the output's last dimension, each side read as
// broadcast: no index arithmetic per element, and loops the compiler can
// vectorize.
template <Broadcast BA, Broadcast BB, typename F>
void ElementwiseRows(const float* pa, const float* pb, float* po, int64_t rows, int64_t cols, F f) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* ra = BA == Broadcast::kFull ? pa + r * cols : pa;
    const float* rb = BB == Broadcast::kFull ? pb + r * cols : pb;
    float* ro = po + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      ro[c] = f(BA == Broadcast::kScalar ? ra[0] : ra[c], BB == Broadcast::kScalar ? rb[0] : rb[c]);
    }
  }
}

template <Broadcast BA, typename F>
void ElementwiseRowsB(Broadcast bb, const float* pa, const float* pb, float* po, int64_t rows, int64_t cols, F f) {
  switch (bb) {
    case Broadcast::kFull: return ElementwiseRows<BA, Broadcast::kFull>(pa, pb, po, rows, cols, f);
    case Broadcast::kScalar: return ElementwiseRows<BA, Broadcast::kScalar>(pa, pb, po, rows, cols, f);
    case Broadcast::kRow: return ElementwiseRows<BA, Broadcast::kRow>(pa, pb, po, rows, cols, f);
  }
}

// out = f(a[i], b[j]) with the right index mapping for each side.
template <typename F>
void Elementwise(const Tensor& a, const Tensor& b, Tensor* out, F f) {
  const Broadcast ba = Classify(a, *out), bb = Classify(b, *out);
  const int64_t n = out->num_elements();
  const int64_t cols = out->shape().empty() ? 1 : out->shape().back();
  if (n == 0 || cols == 0) return;
  const int64_t rows = n / cols;
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* po = out->data<float>();
  switch (ba) {
    case Broadcast::kFull: return ElementwiseRowsB<Broadcast::kFull>(bb, pa, pb, po, rows, cols, f);
    case Broadcast::kScalar: return ElementwiseRowsB<Broadcast::kScalar>(bb, pa, pb, po, rows, cols, f);
    case Broadcast::kRow: return ElementwiseRowsB<Broadcast::kRow>(bb, pa, pb, po, rows, cols, f);
  }
}

// Adds `full` (output-shaped) into grad of an input that was broadcast as `br`.
void ReduceInto(const Tensor& full, const Tensor& input, Tensor* grad) {
  if (grad->num_elements() == 0 && input.num_elements() != 0) *grad = Tensor(DType::kFloat32, input.shape());
  const Broadcast br = Classify(input, full);
  if (br == Broadcast::kFull) {
    grad->flat() += full.flat();
  } else if (br == Broadcast::kScalar) {
    grad->data<float>()[0] += full.flat().sum();
  } else {
    const int64_t cols = input.num_elements();
    Eigen::Map<const RowMatrix> m(full.data<float>(), full.num_elements() / cols, cols);
    grad->flat() += m.colwise().sum().transpose();
  }
}

// Adds `fresh` (a tensor no one else holds) into *into; an empty *into
// takes it over, no copy.
void Accumulate(Tensor&& fresh, Tensor* into) {
  if (into->num_elements() == 0 && fresh.num_elements() != 0) {
    *into = std::move(fresh);
    return;
  }
  into->flat() += fresh.flat();
}

// A float tensor shaped like `t`, not zero-filled: every use writes all of it.
Tensor Like(const Tensor& t) { return Tensor::Uninitialized(DType::kFloat32, t.shape()); }

float Sigmoid(float x) { return x >= 0 ? 1.0f / (1.0f + std::exp(-x)) : std::exp(x) / (1.0f + std::exp(x)); }

// Views a tensor as [elements / last_dim, last_dim]: softmax runs over the
// last dimension whatever the rank.
Eigen::Map<const RowMatrix> LastDimRows(const Tensor& t) {
  const int64_t cols = t.shape().empty() ? 1 : t.shape().back();
  return {t.data<float>(), cols ? t.num_elements() / cols : 0, cols};
}
Eigen::Map<RowMatrix> LastDimRows(Tensor& t) {
  const int64_t cols = t.shape().empty() ? 1 : t.shape().back();
  return {t.data<float>(), cols ? t.num_elements() / cols : 0, cols};
}

void SoftmaxRows(const Tensor& logits, Tensor* out) {
  auto l = LastDimRows(logits);
  auto o = LastDimRows(*out);
  for (int64_t r = 0; r < l.rows(); ++r) {
    const float max = l.row(r).maxCoeff();
    o.row(r) = (l.row(r).array() - max).exp();
    o.row(r) /= o.row(r).sum();
  }
}

Status CheckLabels(const Node& node, const Tensor& logits, const Tensor& labels) {
  if (labels.num_elements() != logits.rows()) {
    return InvalidArgument("node '" + node.name + "': " + std::to_string(labels.num_elements()) + " labels for " +
                           std::to_string(logits.rows()) + " rows of logits");
  }
  const int64_t classes = logits.row_elements();
  const int64_t* y = labels.data<int64_t>();
  for (int64_t i = 0; i < labels.num_elements(); ++i) {
    if (y[i] < 0 || y[i] >= classes) {
      return InvalidArgument("node '" + node.name + "': label " + std::to_string(y[i]) + " at row " +
                             std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
    }
  }
  return Status::OK();
}

StatusOr<Tensor> MatMulForward(const Node& node, const Tensor& a, const Tensor& b) {
  if (a.rank() != 2 || b.rank() != 2 || a.dim(1) != b.dim(0)) {
    return InvalidArgument("node '" + node.name + "': MatMul of " + ShapeString(a.shape()) + " and " +
                           ShapeString(b.shape()));
  }
  Tensor out = Tensor::Uninitialized(DType::kFloat32, {a.dim(0), b.dim(1)});
  kernels::MatMul({.m = a.dim(0), .k = a.dim(1), .n = b.dim(1)}, a.data<float>(), b.data<float>(), out.data<float>());
  return out;
}

StatusOr<Tensor> CrossEntropyForward(const Node& node, const Tensor& logits, const Tensor& labels) {
  RETURN_IF_ERROR(CheckLabels(node, logits, labels));
  Tensor out(DType::kFloat32, {logits.rows()});
  auto l = logits.matrix();
  const int64_t* y = labels.data<int64_t>();
  for (int64_t r = 0; r < l.rows(); ++r) {
    const float max = l.row(r).maxCoeff();
    const float lse = max + std::log((l.row(r).array() - max).exp().sum());
    out.data<float>()[r] = lse - l(r, y[r]);
  }
  return out;
}

StatusOr<Tensor> ArgMaxForward(const Tensor& x) {
  Tensor out(DType::kInt64, {x.rows()});
  auto m = x.matrix();
  for (int64_t r = 0; r < m.rows(); ++r) {
    Eigen::Index idx;
    m.row(r).maxCoeff(&idx);
    out.data<int64_t>()[r] = idx;
  }
  return out;
}

// Concat's inputs and output viewed as [outer, width] matrices: input i is
// columns [offsets[i], offsets[i] + widths[i]) of the output's rows.
struct ConcatLayout {
  Shape shape;  // the output's
  int64_t outer = 1;
  std::vector<int64_t> widths, offsets;
  int64_t total = 0;
};

StatusOr<ConcatLayout> Layout(const Node& node, const std::vector<const Tensor*>& in) {
  const Shape& first = in[0]->shape();
  const size_t axis = static_cast<size_t>(node.axis);
  ConcatLayout l;
  l.shape = first;
  l.shape[axis] = 0;
  int64_t inner = 1;
  for (size_t d = 0; d < first.size(); ++d) {
    if (d < axis) l.outer *= first[d];
    if (d > axis) inner *= first[d];
  }
  for (const Tensor* t : in) {
    bool fits = t->rank() == static_cast<int>(first.size());
    for (size_t d = 0; fits && d < first.size(); ++d) fits = d == axis || t->dim(d) == first[d];
    if (!fits) {
      return InvalidArgument("node '" + node.name + "': Concat of " + ShapeString(first) + " and " +
                             ShapeString(t->shape()) + " along axis " + std::to_string(axis));
    }
    l.offsets.push_back(l.total);
    l.widths.push_back(t->dim(axis) * inner);
    l.total += l.widths.back();
    l.shape[axis] += t->dim(axis);
  }
  return l;
}

StatusOr<Tensor> ConcatForward(const Node& node, const std::vector<const Tensor*>& in) {
  ASSIGN_OR_RETURN(ConcatLayout l, Layout(node, in));
  Tensor out = Tensor::Uninitialized(DType::kFloat32, l.shape);
  float* po = out.data<float>();
  for (int64_t o = 0; o < l.outer; ++o) {
    for (size_t i = 0; i < in.size(); ++i) {
      std::memcpy(po + o * l.total + l.offsets[i], in[i]->data<float>() + o * l.widths[i],
                  l.widths[i] * sizeof(float));
    }
  }
  return out;
}

Status ConcatBackward(const Node& node, const std::vector<const Tensor*>& in, const Tensor& g,
                      std::vector<Tensor>* dx, const std::vector<bool>& wanted) {
  ASSIGN_OR_RETURN(ConcatLayout l, Layout(node, in));
  for (size_t i = 0; i < in.size(); ++i) {
    if (!wanted.empty() && !wanted[i]) continue;
    Tensor gi = Tensor::Uninitialized(DType::kFloat32, in[i]->shape());
    for (int64_t o = 0; o < l.outer; ++o) {
      std::memcpy(gi.data<float>() + o * l.widths[i], g.data<float>() + o * l.total + l.offsets[i],
                  l.widths[i] * sizeof(float));
    }
    Accumulate(std::move(gi), &(*dx)[i]);
  }
  return Status::OK();
}

// Node.shape with its -1 (if any) worked out from the input's element count.
StatusOr<Shape> ReshapeTarget(const Node& node, const Tensor& x) {
  Shape shape = node.shape;
  int64_t known = 1;
  for (int64_t d : shape) known *= d == -1 ? 1 : d;
  auto unknown = std::find(shape.begin(), shape.end(), int64_t{-1});
  if (unknown != shape.end() && known != 0 && x.num_elements() % known == 0) *unknown = x.num_elements() / known;
  if (NumElements(shape) != x.num_elements() || std::count(shape.begin(), shape.end(), int64_t{-1}) != 0) {
    return InvalidArgument("node '" + node.name + "': cannot reshape " + ShapeString(x.shape()) + " to " +
                           ShapeString(node.shape));
  }
  return shape;
}

StatusOr<Tensor> ReshapeForward(const Node& node, const Tensor& x) {
  ASSIGN_OR_RETURN(Shape shape, ReshapeTarget(node, x));
  // A copy, not a view: the input may be a graph constant or a local
  // variable, which a caller fetching this node must not reach.
  Tensor out = Tensor::Uninitialized(x.dtype(), std::move(shape));
  std::memcpy(out.raw(), x.raw(), x.byte_size());
  return out;
}


Status CheckColumns(const Node& node, const Tensor& x) {
  if (x.rank() != 2) {
    return InvalidArgument("node '" + node.name + "': ColumnMean of " + ShapeString(x.shape()) +
                           ", not a [rows, columns] matrix");
  }
  if (x.dim(0) == 0) return InvalidArgument("node '" + node.name + "': ColumnMean of no rows");
  return Status::OK();
}

StatusOr<Tensor> ColumnMeanForward(const Node& node, const Tensor& x) {
  RETURN_IF_ERROR(CheckColumns(node, x));
  Tensor out = Tensor::Uninitialized(DType::kFloat32, {x.dim(1)});
  // Summed in double, like ReduceMean: a large batch's float sum drifts.
  out.flat() = (x.matrix().cast<double>().colwise().sum() / static_cast<double>(x.dim(0))).cast<float>().transpose();
  return out;
}

// SplitMix64's finalizer (MixId's, whose output is fixed by the sparse
// placement, so masks do not change under us either).
uint64_t SplitMix64(uint64_t x) { return MixId(static_cast<int64_t>(x)); }

// out[i] = x[i] * keep[i] * scale, keep[i] = U(salt, seed, i) >= rate
// (graph.h). Element i hashes the i-th state of a SplitMix64 stream started
// from (salt, seed): one multiply-add and one finalizer per element, and any
// element is computed without the others.
Status ApplyDropout(const Node& node, const Tensor& x, const Tensor& seed, Tensor* out) {
  if (seed.dtype() != DType::kInt64 || seed.num_elements() != 1) {
    return InvalidArgument("node '" + node.name + "': the seed must be one int64, got " + DTypeName(seed.dtype()) +
                           ShapeString(seed.shape()));
  }
  constexpr uint64_t kGamma = 0x9e3779b97f4a7c15ULL;
  const uint64_t stream = SplitMix64(SplitMix64(node.salt + kGamma) ^ static_cast<uint64_t>(seed.data<int64_t>()[0]));
  const float scale = 1.0f / (1.0f - node.rate);
  const float* px = x.data<float>();
  float* po = out->data<float>();
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    const uint64_t h = SplitMix64(stream + static_cast<uint64_t>(i + 1) * kGamma);
    const float u = static_cast<float>(h >> 40) * (1.0f / 16777216.0f);  // exact: 24 bits
    po[i] = u >= node.rate ? px[i] * scale : 0.0f;
  }
  return Status::OK();
}

}  // namespace

bool IsDifferentiable(OpType op) {
  switch (op) {
    case OpType::kArgMax:
    case OpType::kAccuracy:
    case OpType::kAssign:
    case OpType::kAssignAdd:
    case OpType::kMinimize:
    case OpType::kPlaceholder:
    case OpType::kConstant:
    case OpType::kVariable:
    case OpType::kSparseTable:
    case OpType::kSelectColumns:  // of int64 ids
      return false;
    default:
      return true;
  }
}

StatusOr<Tensor> ComputeForward(const Node& node, const std::vector<const Tensor*>& in) {
  switch (node.op) {
    case OpType::kMatMul: return MatMulForward(node, *in[0], *in[1]);
    case OpType::kAdd:
    case OpType::kSub:
    case OpType::kMul:
    case OpType::kSigmoidCrossEntropyWithLogits: {
      ASSIGN_OR_RETURN(Shape shape, RuntimeBroadcast(node, *in[0], *in[1]));
      Tensor out = Tensor::Uninitialized(DType::kFloat32, shape);
      switch (node.op) {
        case OpType::kAdd: Elementwise(*in[0], *in[1], &out, [](float a, float b) { return a + b; }); break;
        case OpType::kSub: Elementwise(*in[0], *in[1], &out, [](float a, float b) { return a - b; }); break;
        case OpType::kMul: Elementwise(*in[0], *in[1], &out, [](float a, float b) { return a * b; }); break;
        default:
          Elementwise(*in[0], *in[1], &out, [](float x, float z) {
            return std::max(x, 0.0f) - x * z + std::log1p(std::exp(-std::fabs(x)));
          });
      }
      return out;
    }
    case OpType::kRelu: { Tensor o = Like(*in[0]); o.flat() = in[0]->flat().cwiseMax(0.0f); return o; }
    case OpType::kSigmoid: { Tensor o = Like(*in[0]); o.flat() = in[0]->flat().unaryExpr([](float x) { return Sigmoid(x); }); return o; }
    case OpType::kTanh: { Tensor o = Like(*in[0]); o.flat() = in[0]->flat().array().tanh(); return o; }
    case OpType::kSquare: { Tensor o = Like(*in[0]); o.flat() = in[0]->flat().array().square(); return o; }
    // Not Eigen's rsqrt(): its packet version is an estimate refined per
    // instruction set, so values would differ between machines.
    case OpType::kRsqrt: { Tensor o = Like(*in[0]); o.flat() = in[0]->flat().array().sqrt().inverse(); return o; }
    case OpType::kColumnMean: return ColumnMeanForward(node, *in[0]);
    case OpType::kDropout: {
      Tensor o = Like(*in[0]);
      RETURN_IF_ERROR(ApplyDropout(node, *in[0], *in[1], &o));
      return o;
    }
    case OpType::kSoftmax: { Tensor o = Like(*in[0]); SoftmaxRows(*in[0], &o); return o; }
    case OpType::kSparseSoftmaxCrossEntropyWithLogits: return CrossEntropyForward(node, *in[0], *in[1]);
    case OpType::kReduceMean:
    case OpType::kReduceSum: {
      Tensor o(DType::kFloat32, {});
      const double sum = in[0]->flat().cast<double>().sum();
      const int64_t n = in[0]->num_elements();
      o.data<float>()[0] = static_cast<float>(node.op == OpType::kReduceSum ? sum : (n ? sum / n : 0.0));
      return o;
    }
    case OpType::kArgMax: return ArgMaxForward(*in[0]);
    case OpType::kConcat: return ConcatForward(node, in);
    case OpType::kReshape: return ReshapeForward(node, *in[0]);
    case OpType::kSelectColumns: {
      const Tensor& x = *in[0];
      const int64_t n = x.dim(0), c = x.dim(1), k = static_cast<int64_t>(node.columns.size());
      for (int64_t col : node.columns) {
        if (col >= c) {
          return InvalidArgument("SelectColumns '" + node.name + "': column " + std::to_string(col) +
                                 " of a matrix of " + std::to_string(c));
        }
      }
      Tensor out = Tensor::Uninitialized(DType::kInt64, {n, k});
      const int64_t* src = x.data<int64_t>();
      int64_t* dst = out.data<int64_t>();
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t j = 0; j < k; ++j) dst[r * k + j] = src[r * c + node.columns[j]];
      }
      return out;
    }
    case OpType::kAccuracy: {
      RETURN_IF_ERROR(CheckLabels(node, *in[0], *in[1]));
      ASSIGN_OR_RETURN(Tensor pred, ArgMaxForward(*in[0]));
      int64_t correct = 0;
      for (int64_t i = 0; i < pred.num_elements(); ++i) correct += pred.data<int64_t>()[i] == in[1]->data<int64_t>()[i];
      Tensor o(DType::kFloat32, {});
      o.data<float>()[0] = pred.num_elements() ? static_cast<float>(correct) / pred.num_elements() : 0.0f;
      return o;
    }
    default:
      return Internal(std::string("ComputeForward called for a ") + OpTypeName(node.op) + " node '" + node.name + "'");
  }
}

Status ComputeBackward(const Node& node, const std::vector<const Tensor*>& in, const Tensor& out, const Tensor& g,
                       std::vector<Tensor>* grads, const std::vector<bool>& wanted) {
  std::vector<Tensor>& dx = *grads;
  auto want = [&](size_t i) { return wanted.empty() || wanted[i]; };
  switch (node.op) {
    case OpType::kMatMul: {
      // a [m, k] · b [k, n] = out [m, n]: ga = g · bᵀ, gb = aᵀ · g, each
      // written straight into its gradient (or added to one already there).
      const int64_t m = in[0]->dim(0), k = in[0]->dim(1), n = in[1]->dim(1);
      for (size_t i : {0, 1}) {
        if (!want(i)) continue;
        const bool add = dx[i].num_elements() != 0;
        if (!add) dx[i] = Tensor::Uninitialized(DType::kFloat32, in[i]->shape());
        if (i == 0) {
          kernels::MatMul({.m = m, .k = n, .n = k, .transpose_b = true, .accumulate = add}, g.data<float>(),
                          in[1]->data<float>(), dx[0].data<float>());
        } else {
          kernels::MatMul({.m = k, .k = m, .n = n, .transpose_a = true, .accumulate = add}, in[0]->data<float>(),
                          g.data<float>(), dx[1].data<float>());
        }
      }
      return Status::OK();
    }
    case OpType::kAdd:
    case OpType::kSub: {
      if (want(0)) ReduceInto(g, *in[0], &dx[0]);
      if (!want(1)) return Status::OK();
      Tensor neg = g;
      if (node.op == OpType::kSub) { neg = g.Clone(); neg.flat() *= -1.0f; }
      ReduceInto(neg, *in[1], &dx[1]);
      return Status::OK();
    }
    case OpType::kMul: {
      if (want(0)) {
        Tensor ga = Like(out);
        Elementwise(g, *in[1], &ga, [](float gi, float b) { return gi * b; });
        ReduceInto(ga, *in[0], &dx[0]);
      }
      if (want(1)) {
        Tensor gb = Like(out);
        Elementwise(g, *in[0], &gb, [](float gi, float a) { return gi * a; });
        ReduceInto(gb, *in[1], &dx[1]);
      }
      return Status::OK();
    }
    case OpType::kSigmoidCrossEntropyWithLogits: {
      Tensor gx = Like(out);
      Elementwise(*in[0], *in[1], &gx, [](float x, float z) { return Sigmoid(x) - z; });
      gx.flat() = gx.flat().cwiseProduct(g.flat());
      ReduceInto(gx, *in[0], &dx[0]);
      return Status::OK();
    }
    case OpType::kRelu: {
      Tensor gx = Like(out);
      gx.flat() = (in[0]->flat().array() > 0.0f).select(g.flat(), 0.0f);
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kSigmoid: {
      Tensor gx = Like(out);
      gx.flat() = g.flat().array() * out.flat().array() * (1.0f - out.flat().array());
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kTanh: {
      Tensor gx = Like(out);
      gx.flat() = g.flat().array() * (1.0f - out.flat().array().square());
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kSquare: {
      Tensor gx = Like(out);
      gx.flat() = 2.0f * g.flat().array() * in[0]->flat().array();
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kRsqrt: {  // y = x^-1/2: dy/dx = -x^-3/2 / 2 = -y^3 / 2
      Tensor gx = Like(out);
      gx.flat() = -0.5f * g.flat().array() * out.flat().array().cube();
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kColumnMean: {
      RETURN_IF_ERROR(CheckColumns(node, *in[0]));
      Tensor gx = Like(*in[0]);
      gx.matrix().rowwise() = g.flat().transpose() / static_cast<float>(in[0]->dim(0));
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kDropout: {
      // The mask again from the same (salt, seed, i), applied to g instead of
      // x; the seed (input 1) has no gradient.
      if (!want(0)) return Status::OK();
      Tensor gx = Like(*in[0]);
      RETURN_IF_ERROR(ApplyDropout(node, g, *in[1], &gx));
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kSoftmax: {
      Tensor gx = Like(out);
      auto y = LastDimRows(out);
      auto gm = LastDimRows(g);
      auto o = LastDimRows(gx);
      for (int64_t r = 0; r < y.rows(); ++r) {
        const float dot = y.row(r).dot(gm.row(r));
        o.row(r) = y.row(r).array() * (gm.row(r).array() - dot);
      }
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kSparseSoftmaxCrossEntropyWithLogits: {
      Tensor gx = Like(*in[0]);
      SoftmaxRows(*in[0], &gx);
      auto m = gx.matrix();
      const int64_t* y = in[1]->data<int64_t>();
      for (int64_t r = 0; r < m.rows(); ++r) {
        m(r, y[r]) -= 1.0f;
        m.row(r) *= g.data<float>()[r];
      }
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kReduceMean:
    case OpType::kReduceSum: {
      Tensor gx = Like(*in[0]);
      const int64_t n = in[0]->num_elements();
      const float scale = node.op == OpType::kReduceSum ? 1.0f : (n ? 1.0f / n : 0.0f);
      gx.flat().setConstant(g.data<float>()[0] * scale);
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    case OpType::kConcat: return ConcatBackward(node, in, g, &dx, wanted);
    case OpType::kReshape: {
      Tensor gx = Tensor::Uninitialized(DType::kFloat32, in[0]->shape());
      std::memcpy(gx.raw(), g.raw(), g.byte_size());
      Accumulate(std::move(gx), &dx[0]);
      return Status::OK();
    }
    default:
      return Status::OK();  // not differentiable
  }
}

}  // namespace cairn
