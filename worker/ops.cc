#include "worker/ops.h"

#include <cmath>

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

// out = f(a[i], b[j]) with the right index mapping for each side.
template <typename F>
void Elementwise(const Tensor& a, const Tensor& b, Tensor* out, F f) {
  const Broadcast ba = Classify(a, *out), bb = Classify(b, *out);
  const int64_t n = out->num_elements();
  const int64_t cols = out->shape().empty() ? 1 : out->shape().back();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* po = out->data<float>();
  auto index = [cols](Broadcast br, int64_t i) -> int64_t {
    return br == Broadcast::kFull ? i : br == Broadcast::kScalar ? 0 : i % cols;
  };
  if (ba == Broadcast::kFull && bb == Broadcast::kFull) {
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) po[i] = f(pa[index(ba, i)], pb[index(bb, i)]);
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

void Accumulate(const Tensor& g, Tensor* into) {
  if (into->num_elements() == 0 && g.num_elements() != 0) {
    *into = g.Clone();
    return;
  }
  into->flat() += g.flat();
}

Tensor Like(const Tensor& t) { return Tensor(DType::kFloat32, t.shape()); }

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
  Tensor out(DType::kFloat32, {a.dim(0), b.dim(1)});
  out.matrix().noalias() = a.matrix() * b.matrix();
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
      Tensor out(DType::kFloat32, shape);
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
                       std::vector<Tensor>* grads) {
  std::vector<Tensor>& dx = *grads;
  switch (node.op) {
    case OpType::kMatMul: {
      Tensor ga(DType::kFloat32, in[0]->shape()), gb(DType::kFloat32, in[1]->shape());
      ga.matrix().noalias() = g.matrix() * in[1]->matrix().transpose();
      gb.matrix().noalias() = in[0]->matrix().transpose() * g.matrix();
      Accumulate(ga, &dx[0]);
      Accumulate(gb, &dx[1]);
      return Status::OK();
    }
    case OpType::kAdd:
    case OpType::kSub: {
      ReduceInto(g, *in[0], &dx[0]);
      Tensor neg = g;
      if (node.op == OpType::kSub) { neg = g.Clone(); neg.flat() *= -1.0f; }
      ReduceInto(neg, *in[1], &dx[1]);
      return Status::OK();
    }
    case OpType::kMul: {
      Tensor ga = Like(out), gb = Like(out);
      Elementwise(g, *in[1], &ga, [](float gi, float b) { return gi * b; });
      Elementwise(g, *in[0], &gb, [](float gi, float a) { return gi * a; });
      ReduceInto(ga, *in[0], &dx[0]);
      ReduceInto(gb, *in[1], &dx[1]);
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
      Accumulate(gx, &dx[0]);
      return Status::OK();
    }
    case OpType::kSigmoid: {
      Tensor gx = Like(out);
      gx.flat() = g.flat().array() * out.flat().array() * (1.0f - out.flat().array());
      Accumulate(gx, &dx[0]);
      return Status::OK();
    }
    case OpType::kTanh: {
      Tensor gx = Like(out);
      gx.flat() = g.flat().array() * (1.0f - out.flat().array().square());
      Accumulate(gx, &dx[0]);
      return Status::OK();
    }
    case OpType::kSquare: {
      Tensor gx = Like(out);
      gx.flat() = 2.0f * g.flat().array() * in[0]->flat().array();
      Accumulate(gx, &dx[0]);
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
      Accumulate(gx, &dx[0]);
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
      Accumulate(gx, &dx[0]);
      return Status::OK();
    }
    case OpType::kReduceMean:
    case OpType::kReduceSum: {
      Tensor gx = Like(*in[0]);
      const int64_t n = in[0]->num_elements();
      const float scale = node.op == OpType::kReduceSum ? 1.0f : (n ? 1.0f / n : 0.0f);
      gx.flat().setConstant(g.data<float>()[0] * scale);
      Accumulate(gx, &dx[0]);
      return Status::OK();
    }
    default:
      return Status::OK();  // not differentiable
  }
}

}  // namespace cairn
