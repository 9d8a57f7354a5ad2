#include "worker/graph.h"

#include <algorithm>

namespace cairn {
namespace {

bool DimsCompatible(int64_t a, int64_t b) { return a == -1 || b == -1 || a == b; }

}  // namespace

const char* OpTypeName(OpType op) {
  switch (op) {
    case OpType::kPlaceholder: return "Placeholder";
    case OpType::kConstant: return "Constant";
    case OpType::kVariable: return "Variable";
    case OpType::kMatMul: return "MatMul";
    case OpType::kAdd: return "Add";
    case OpType::kSub: return "Sub";
    case OpType::kMul: return "Mul";
    case OpType::kRelu: return "Relu";
    case OpType::kSigmoid: return "Sigmoid";
    case OpType::kTanh: return "Tanh";
    case OpType::kSoftmax: return "Softmax";
    case OpType::kSquare: return "Square";
    case OpType::kSparseSoftmaxCrossEntropyWithLogits: return "SparseSoftmaxCrossEntropyWithLogits";
    case OpType::kSigmoidCrossEntropyWithLogits: return "SigmoidCrossEntropyWithLogits";
    case OpType::kReduceMean: return "ReduceMean";
    case OpType::kReduceSum: return "ReduceSum";
    case OpType::kArgMax: return "ArgMax";
    case OpType::kAccuracy: return "Accuracy";
    case OpType::kAssign: return "Assign";
    case OpType::kAssignAdd: return "AssignAdd";
    case OpType::kMinimize: return "Minimize";
    case OpType::kSparseTable: return "SparseTable";
    case OpType::kEmbeddingLookup: return "EmbeddingLookup";
    case OpType::kEmbeddingBag: return "EmbeddingBag";
    case OpType::kConcat: return "Concat";
    case OpType::kReshape: return "Reshape";
    case OpType::kSelectColumns: return "SelectColumns";
    case OpType::kColumnMean: return "ColumnMean";
    case OpType::kRsqrt: return "Rsqrt";
    case OpType::kDropout: return "Dropout";
  }
  return "Unknown";
}

StatusOr<Shape> BroadcastShape(const Shape& a, const Shape& b) {
  auto same = [](const Shape& x, const Shape& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!DimsCompatible(x[i], y[i])) return false;
    }
    return true;
  };
  if (same(a, b)) {
    Shape out = a;
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] == -1) out[i] = b[i];
    }
    return out;
  }
  auto is_scalar = [](const Shape& s) { return s.empty() || (s.size() == 1 && s[0] == 1); };
  if (is_scalar(b)) return a;
  if (is_scalar(a)) return b;
  if (b.size() == 1 && a.size() == 2 && DimsCompatible(a[1], b[0])) return a;
  if (a.size() == 1 && b.size() == 2 && DimsCompatible(b[1], a[0])) return b;
  return InvalidArgument("shapes " + ShapeString(a) + " and " + ShapeString(b) + " do not broadcast");
}

void Graph::Fail(const std::string& message) {
  if (status_.ok()) status_ = InvalidArgument(message);
}

bool Graph::Check(Output o, const char* what, bool allow_table) {
  if (o.node < 0 || o.node >= num_nodes()) {
    Fail(std::string(what) + ": input is not a node of this graph");
    return false;
  }
  if (!allow_table && nodes_[o.node].op == OpType::kSparseTable) {
    Fail(std::string(what) + " of '" + nodes_[o.node].name +
         "': a sparse table is read only through EmbeddingLookup or EmbeddingBag");
    return false;
  }
  return true;
}

std::string Graph::UniqueName(const std::string& name, OpType op) {
  if (!name.empty()) return name;
  std::string base = OpTypeName(op);
  for (int i = 0;; ++i) {
    std::string candidate = base + "_" + std::to_string(i);
    if (!by_name_.count(candidate)) return candidate;
  }
}

Output Graph::Add(Node node) {
  node.id = num_nodes();
  node.name = UniqueName(node.name, node.op);
  if (by_name_.count(node.name)) {
    Fail("a node named '" + node.name + "' already exists");
    node.name += "_dup" + std::to_string(node.id);
  }
  by_name_[node.name] = node.id;
  nodes_.push_back(std::move(node));
  return Output{nodes_.back().id};
}

Output Graph::Placeholder(const std::string& name, DType dtype, Shape shape) {
  Node n;
  n.name = name;
  n.op = OpType::kPlaceholder;
  n.dtype = dtype;
  n.shape = std::move(shape);
  return Add(std::move(n));
}

Output Graph::Constant(const std::string& name, Tensor value) {
  Node n;
  n.name = name;
  n.op = OpType::kConstant;
  n.dtype = value.dtype();
  n.shape = value.shape();
  n.value = std::move(value);
  return Add(std::move(n));
}

Output Graph::Variable(const VariableOptions& options) {
  Node n;
  n.name = options.name;
  n.op = OpType::kVariable;
  n.dtype = options.dtype;
  n.shape = options.shape;
  n.variable = options;
  if (options.local) n.variable.trainable = false;
  VariableSpec spec{options.name, options.shape, options.dtype, options.init, n.variable.trainable};
  Status s = ValidateSpec(spec);
  if (!s.ok()) Fail(s.message());
  if (n.variable.trainable && options.dtype != DType::kFloat32) Fail("variable '" + options.name + "': only float32 variables can be trainable");
  return Add(std::move(n));
}

Output Graph::SparseTable(const SparseTableOptions& options) {
  Node n;
  n.name = options.name;
  n.op = OpType::kSparseTable;
  n.shape = {-1, options.dim};
  n.table = options;
  Status s = ValidateSparseSpec(SparseTableSpec{options.name, options.dim, options.init, options.trainable});
  if (!s.ok()) Fail(s.message());
  return Add(std::move(n));
}

Output Graph::Binary(OpType op, Output a, Output b, const std::string& name) {
  Node n;
  n.name = name;
  n.op = op;
  if (Check(a, OpTypeName(op)) && Check(b, OpTypeName(op))) {
    n.inputs = {a.node, b.node};
    const Node& x = nodes_[a.node];
    const Node& y = nodes_[b.node];
    if (x.dtype != DType::kFloat32 || y.dtype != DType::kFloat32) {
      Fail(std::string(OpTypeName(op)) + " of '" + x.name + "' and '" + y.name + "': inputs must be float32");
    }
    StatusOr<Shape> s = BroadcastShape(x.shape, y.shape);
    if (s.ok()) n.shape = *s;
    else Fail(std::string(OpTypeName(op)) + " of '" + x.name + "' and '" + y.name + "': " + s.status().message());
  }
  return Add(std::move(n));
}

Output Graph::Unary(OpType op, Output x, const std::string& name) {
  Node n;
  n.name = name;
  n.op = op;
  if (Check(x, OpTypeName(op))) {
    n.inputs = {x.node};
    n.shape = nodes_[x.node].shape;
    if (nodes_[x.node].dtype != DType::kFloat32) Fail(std::string(OpTypeName(op)) + " of '" + nodes_[x.node].name + "': input must be float32");
  }
  return Add(std::move(n));
}

Output Graph::MatMul(Output a, Output b, const std::string& name) {
  Node n;
  n.name = name;
  n.op = OpType::kMatMul;
  if (Check(a, "MatMul") && Check(b, "MatMul")) {
    n.inputs = {a.node, b.node};
    const Shape& x = nodes_[a.node].shape;
    const Shape& y = nodes_[b.node].shape;
    if (x.size() != 2 || y.size() != 2 || !DimsCompatible(x[1], y[0])) {
      Fail("MatMul of '" + nodes_[a.node].name + "' " + ShapeString(x) + " and '" + nodes_[b.node].name + "' " +
           ShapeString(y) + ": needs [m, k] x [k, n]");
    } else {
      n.shape = {x[0], y[1]};
    }
  }
  return Add(std::move(n));
}

Output Graph::Add(Output a, Output b, const std::string& name) { return Binary(OpType::kAdd, a, b, name); }
Output Graph::Sub(Output a, Output b, const std::string& name) { return Binary(OpType::kSub, a, b, name); }
Output Graph::Mul(Output a, Output b, const std::string& name) { return Binary(OpType::kMul, a, b, name); }
Output Graph::Relu(Output x, const std::string& name) { return Unary(OpType::kRelu, x, name); }
Output Graph::Sigmoid(Output x, const std::string& name) { return Unary(OpType::kSigmoid, x, name); }
Output Graph::Tanh(Output x, const std::string& name) { return Unary(OpType::kTanh, x, name); }
Output Graph::Softmax(Output x, const std::string& name) { return Unary(OpType::kSoftmax, x, name); }
Output Graph::Square(Output x, const std::string& name) { return Unary(OpType::kSquare, x, name); }
Output Graph::Rsqrt(Output x, const std::string& name) { return Unary(OpType::kRsqrt, x, name); }

Output Graph::SparseSoftmaxCrossEntropyWithLogits(Output logits, Output labels, const std::string& name) {
  Node n;
  n.name = name;
  n.op = OpType::kSparseSoftmaxCrossEntropyWithLogits;
  if (Check(logits, "SparseSoftmaxCrossEntropyWithLogits") && Check(labels, "SparseSoftmaxCrossEntropyWithLogits")) {
    n.inputs = {logits.node, labels.node};
    const Node& l = nodes_[logits.node];
    const Node& y = nodes_[labels.node];
    if (l.shape.size() != 2 || y.shape.size() != 1 || !DimsCompatible(l.shape[0], y.shape[0]) ||
        y.dtype != DType::kInt64 || l.dtype != DType::kFloat32) {
      Fail("SparseSoftmaxCrossEntropyWithLogits needs float32 logits [batch, classes] and int64 labels [batch], got '" +
           l.name + "' " + ShapeString(l.shape) + " and '" + y.name + "' " + DTypeName(y.dtype) +
           ShapeString(y.shape));
    } else {
      n.shape = {l.shape[0]};
    }
  }
  return Add(std::move(n));
}

Output Graph::SigmoidCrossEntropyWithLogits(Output logits, Output labels, const std::string& name) {
  Output out = Binary(OpType::kSigmoidCrossEntropyWithLogits, logits, labels, name);
  if (Check(logits, "SigmoidCrossEntropyWithLogits") && Check(labels, "SigmoidCrossEntropyWithLogits") &&
      nodes_[logits.node].shape.size() != nodes_[labels.node].shape.size()) {
    Fail("SigmoidCrossEntropyWithLogits needs logits and labels of the same shape");
  }
  return out;
}

Output Graph::ReduceMean(Output x, const std::string& name) {
  Output out = Unary(OpType::kReduceMean, x, name);
  nodes_[out.node].shape = {};
  return out;
}

Output Graph::ReduceSum(Output x, const std::string& name) {
  Output out = Unary(OpType::kReduceSum, x, name);
  nodes_[out.node].shape = {};
  return out;
}

Output Graph::ColumnMean(Output x, const std::string& name) {
  Output out = Unary(OpType::kColumnMean, x, name);
  Node& n = nodes_[out.node];
  if (n.inputs.empty()) return out;  // an invalid handle, already recorded
  if (n.shape.size() != 2) {
    Fail("ColumnMean '" + n.name + "' of '" + nodes_[x.node].name + "' " + ShapeString(n.shape) +
         ": needs a [rows, columns] input");
  } else {
    n.shape = {n.shape[1]};
  }
  return out;
}

Output Graph::Dropout(Output x, Output seed, float rate, uint64_t salt, const std::string& name) {
  Output out = Unary(OpType::kDropout, x, name);
  Node& n = nodes_[out.node];
  n.rate = rate;
  n.salt = salt;
  if (!(rate >= 0.0f && rate < 1.0f)) {  // NaN too
    Fail("Dropout '" + n.name + "': rate " + std::to_string(rate) + " is outside [0, 1)");
  }
  if (n.inputs.empty() || !Check(seed, "Dropout seed")) return out;
  n.inputs.push_back(seed.node);
  const Node& s = nodes_[seed.node];
  if (s.dtype != DType::kInt64 || !s.shape.empty()) {
    Fail("Dropout '" + n.name + "': seed '" + s.name + "' is " + DTypeName(s.dtype) + ShapeString(s.shape) +
         ", not an int64 scalar");
  }
  return out;
}

Output Graph::ArgMax(Output x, const std::string& name) {
  Output out = Unary(OpType::kArgMax, x, name);
  Node& n = nodes_[out.node];
  n.dtype = DType::kInt64;
  if (n.shape.size() != 2) Fail("ArgMax of '" + n.name + "' needs a [batch, classes] input");
  else n.shape = {n.shape[0]};
  return out;
}

Output Graph::Accuracy(Output logits, Output labels, const std::string& name) {
  Node n;
  n.name = name;
  n.op = OpType::kAccuracy;
  if (Check(logits, "Accuracy") && Check(labels, "Accuracy")) {
    n.inputs = {logits.node, labels.node};
    if (nodes_[logits.node].shape.size() != 2 || nodes_[labels.node].dtype != DType::kInt64) {
      Fail("Accuracy needs logits [batch, classes] and int64 labels [batch]");
    }
  }
  n.shape = {};
  return Add(std::move(n));
}

Output Graph::Assign(Output variable, Output value, const std::string& name) {
  return AssignOp(OpType::kAssign, variable, value, name);
}

Output Graph::AssignAdd(Output variable, Output delta, const std::string& name) {
  return AssignOp(OpType::kAssignAdd, variable, delta, name);
}

Output Graph::AssignOp(OpType op, Output variable, Output value, const std::string& name) {
  Node n;
  n.name = name;
  n.op = op;
  if (Check(variable, OpTypeName(op)) && Check(value, OpTypeName(op))) {
    n.inputs = {variable.node, value.node};
    const Node& v = nodes_[variable.node];
    const Node& x = nodes_[value.node];
    n.dtype = v.dtype;
    n.shape = v.shape;
    if (v.op != OpType::kVariable) {
      Fail(std::string(OpTypeName(op)) + " to '" + v.name + "', which is not a variable");
    } else if (v.dtype != x.dtype || NumElements(v.shape) != NumElements(x.shape)) {
      Fail(std::string(OpTypeName(op)) + " of '" + x.name + "' " + DTypeName(x.dtype) + ShapeString(x.shape) +
           " to variable '" + v.name + "' " + DTypeName(v.dtype) + ShapeString(v.shape));
    }
  }
  return Add(std::move(n));
}

bool Graph::DependsOnEmbedding(int node) const {
  std::vector<bool> seen(nodes_.size(), false);
  std::vector<int> stack{node};
  while (!stack.empty()) {
    const int id = stack.back();
    stack.pop_back();
    if (seen[id]) continue;
    seen[id] = true;
    const OpType op = nodes_[id].op;
    if (op == OpType::kEmbeddingLookup || op == OpType::kEmbeddingBag) return true;
    for (int in : nodes_[id].inputs) stack.push_back(in);
  }
  return false;
}

Output Graph::Embedding(OpType op, Output table, Output ids, const std::string& name) {
  Node n;
  n.name = name;
  n.op = op;
  if (!Check(table, OpTypeName(op), /*allow_table=*/true) || !Check(ids, OpTypeName(op))) return Add(std::move(n));
  n.inputs = {table.node, ids.node};
  const Node& t = nodes_[table.node];
  const Node& i = nodes_[ids.node];
  const std::string what = std::string(OpTypeName(op)) + " of '" + t.name + "' by '" + i.name + "'";
  if (t.op != OpType::kSparseTable) {
    Fail(what + ": '" + t.name + "' is not a sparse table");
    return Add(std::move(n));
  }
  if (i.dtype != DType::kInt64) Fail(what + ": ids must be int64, got " + DTypeName(i.dtype));
  if (op == OpType::kEmbeddingBag && i.shape.size() != 2) {
    Fail(what + ": ids must be [batch, bag], got " + ShapeString(i.shape));
  }
  if (DependsOnEmbedding(ids.node)) {
    Fail(what + ": the ids depend on an embedding lookup (a Run pulls every table's rows before any lookup)");
  }
  if (op == OpType::kEmbeddingBag) {
    n.shape = {i.shape.empty() ? -1 : i.shape[0], t.table.dim};
  } else {
    n.shape = i.shape;
    n.shape.push_back(t.table.dim);
  }
  return Add(std::move(n));
}

Output Graph::EmbeddingLookup(Output table, Output ids, const std::string& name) {
  return Embedding(OpType::kEmbeddingLookup, table, ids, name);
}

Output Graph::EmbeddingBag(Output table, Output ids, Combiner combiner, const std::string& name) {
  Output out = Embedding(OpType::kEmbeddingBag, table, ids, name);
  nodes_[out.node].combiner = combiner;
  return out;
}

Output Graph::Concat(const std::vector<Output>& inputs, int axis, const std::string& name) {
  Node n;
  n.name = name;
  n.op = OpType::kConcat;
  if (inputs.empty()) {
    Fail("Concat of no inputs");
    return Add(std::move(n));
  }
  for (Output in : inputs) {
    if (!Check(in, "Concat")) return Add(std::move(n));
    n.inputs.push_back(in.node);
  }
  const Shape& first = nodes_[inputs[0].node].shape;
  const int rank = static_cast<int>(first.size());
  n.axis = axis < 0 ? axis + rank : axis;
  if (n.axis < 0 || n.axis >= rank) {
    Fail("Concat: axis " + std::to_string(axis) + " is outside the inputs' rank " + std::to_string(rank));
    return Add(std::move(n));
  }
  n.shape = first;
  n.shape[n.axis] = 0;
  for (Output in : inputs) {
    const Node& x = nodes_[in.node];
    bool fits = x.dtype == DType::kFloat32 && x.shape.size() == first.size();
    for (int d = 0; fits && d < rank; ++d) {
      if (d != n.axis) fits = DimsCompatible(x.shape[d], n.shape[d]);
      if (d != n.axis && n.shape[d] == -1) n.shape[d] = x.shape[d];
    }
    if (!fits) {
      Fail("Concat of '" + nodes_[inputs[0].node].name + "' " + ShapeString(first) + " and '" + x.name + "' " +
           DTypeName(x.dtype) + ShapeString(x.shape) + " along axis " + std::to_string(n.axis) +
           ": needs float32 inputs equal in every other dimension");
      return Add(std::move(n));
    }
    n.shape[n.axis] = (n.shape[n.axis] == -1 || x.shape[n.axis] == -1) ? -1 : n.shape[n.axis] + x.shape[n.axis];
  }
  return Add(std::move(n));
}

Output Graph::SelectColumns(Output x, std::vector<int64_t> columns, const std::string& name) {
  Node n;
  n.name = name;
  n.op = OpType::kSelectColumns;
  n.dtype = DType::kInt64;
  if (!Check(x, "SelectColumns")) return Add(std::move(n));
  n.inputs = {x.node};
  const Node& in = nodes_[x.node];
  const std::string what = "SelectColumns '" + (name.empty() ? std::string("?") : name) + "' of '" + in.name + "'";
  if (in.dtype != DType::kInt64 || in.shape.size() != 2) {
    Fail(what + ": needs an int64 matrix, got " + DTypeName(in.dtype) + " " + ShapeString(in.shape));
  } else if (columns.empty()) {
    Fail(what + ": no columns");
  } else {
    for (int64_t c : columns) {
      if (c < 0 || (in.shape[1] >= 0 && c >= in.shape[1])) {
        Fail(what + ": column " + std::to_string(c) + " outside [0, " + std::to_string(in.shape[1]) + ")");
        break;
      }
    }
  }
  n.shape = {in.shape.empty() ? -1 : in.shape[0], static_cast<int64_t>(columns.size())};
  n.columns = std::move(columns);
  return Add(std::move(n));
}

Output Graph::Reshape(Output x, Shape shape, const std::string& name) {
  Node n;
  n.name = name;
  n.op = OpType::kReshape;
  if (!Check(x, "Reshape")) return Add(std::move(n));
  n.inputs = {x.node};
  const Node& in = nodes_[x.node];
  n.dtype = in.dtype;
  int unknown = 0;
  int64_t known = 1;
  bool bad_dim = false;
  for (int64_t d : shape) {
    if (d == -1) ++unknown;
    else if (d < 0) bad_dim = true;
    else known *= d;
  }
  const bool in_known = std::all_of(in.shape.begin(), in.shape.end(), [](int64_t d) { return d >= 0; });
  const std::string what = "Reshape of '" + in.name + "' " + ShapeString(in.shape) + " to " + ShapeString(shape);
  if (bad_dim || unknown > 1) {
    Fail(what + ": dimensions must be >= 0, with at most one -1");
  } else if (in_known && unknown == 0 && NumElements(in.shape) != known) {
    Fail(what + ": the element counts differ");
  } else if (in_known && unknown == 1) {
    if (known == 0 || NumElements(in.shape) % known != 0) Fail(what + ": the element count does not divide");
    else std::replace(shape.begin(), shape.end(), int64_t{-1}, NumElements(in.shape) / known);
  }
  n.shape = std::move(shape);
  return Add(std::move(n));
}

Output Graph::Minimize(Output loss, const MinimizeOptions& options, const std::string& name) {
  Node n;
  n.name = name;
  n.op = OpType::kMinimize;
  n.minimize = options;
  n.shape = {0};
  if (Check(loss, "Minimize")) {
    n.inputs = {loss.node};
    if (!nodes_[loss.node].shape.empty()) Fail("Minimize: loss '" + nodes_[loss.node].name + "' must be a scalar");
  }
  for (Output v : options.var_list) {
    if (Check(v, "Minimize var_list", /*allow_table=*/true) && nodes_[v.node].op != OpType::kVariable &&
        nodes_[v.node].op != OpType::kSparseTable) {
      Fail("Minimize var_list: '" + nodes_[v.node].name + "' is not a variable or a sparse table");
    }
  }
  if (options.global_step.valid() && Check(options.global_step, "Minimize global_step") &&
      (nodes_[options.global_step.node].op != OpType::kVariable ||
       nodes_[options.global_step.node].dtype != DType::kInt64)) {
    Fail("Minimize global_step must be an int64 variable");
  }
  return Add(std::move(n));
}

StatusOr<Output> Graph::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return NotFound("no node named '" + name + "' in the graph");
  return Output{it->second};
}

std::vector<VariableSpec> Graph::ServerVariables() const {
  std::vector<VariableSpec> out;
  for (const Node& n : nodes_) {
    if (n.op != OpType::kVariable || n.variable.local) continue;
    out.push_back(VariableSpec{n.name, n.shape, n.dtype, n.variable.init, n.variable.trainable});
  }
  return out;
}

std::vector<SparseTableSpec> Graph::SparseTables() const {
  std::vector<SparseTableSpec> out;
  for (const Node& n : nodes_) {
    if (n.op != OpType::kSparseTable) continue;
    out.push_back(SparseTableSpec{n.name, n.table.dim, n.table.init, n.table.trainable});
  }
  return out;
}

std::map<std::string, std::vector<std::string>> Graph::DeclaredCollections() const {
  std::map<std::string, std::vector<std::string>> out;
  for (const Node& n : nodes_) {
    if (n.op == OpType::kSparseTable) {
      out[collections::kGlobalVariables].push_back(n.name);
      if (n.table.trainable) out[collections::kTrainableVariables].push_back(n.name);
      for (const std::string& c : n.table.collections) out[c].push_back(n.name);
      continue;
    }
    if (n.op != OpType::kVariable) continue;
    if (n.variable.local) {
      out[collections::kLocalVariables].push_back(n.name);
    } else {
      out[collections::kGlobalVariables].push_back(n.name);
      if (n.variable.trainable) out[collections::kTrainableVariables].push_back(n.name);
    }
    for (const std::string& c : n.variable.collections) out[c].push_back(n.name);
  }
  return out;
}

}  // namespace cairn
