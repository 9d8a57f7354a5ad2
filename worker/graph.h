// Graph: a worker's model as a DAG of placeholders, constants, variables and
// ops, with reverse-mode gradients.
//
// Building is infallible at each call: a builder that is given bad inputs
// (unknown node, incompatible shapes) records the first such error and
// returns a handle anyway; status() reports it, and a Session refuses to run
// a graph whose status() is not OK. This keeps model code linear, like
// TensorFlow's graph construction.
//
// Shapes may have unknown dimensions (-1), typically the batch dimension of
// a placeholder; they are checked again at run time with the fed values.
//
// A Graph is built by one thread, then read-only: any number of Sessions may
// share it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "common/variable_spec.h"

namespace cairn {

// Standard collection names (TensorFlow's GraphKeys).
namespace collections {
inline constexpr const char* kGlobalVariables = "GLOBAL_VARIABLES";
inline constexpr const char* kTrainableVariables = "TRAINABLE_VARIABLES";
inline constexpr const char* kLocalVariables = "LOCAL_VARIABLES";
inline constexpr const char* kUpdateOps = "UPDATE_OPS";
inline constexpr const char* kLosses = "LOSSES";
}  // namespace collections

enum class OpType {
  kPlaceholder, kConstant, kVariable,
  kMatMul, kAdd, kSub, kMul,
  kRelu, kSigmoid, kTanh, kSoftmax, kSquare,
  kSparseSoftmaxCrossEntropyWithLogits, kSigmoidCrossEntropyWithLogits,
  kReduceMean, kReduceSum,
  kArgMax, kAccuracy,
  kAssign, kAssignAdd,
  kMinimize,
};
const char* OpTypeName(OpType op);

// A handle to a node's output.
struct Output {
  int node = -1;
  bool valid() const { return node >= 0; }
  bool operator==(const Output&) const = default;
  bool operator<(const Output& o) const { return node < o.node; }
};

struct VariableOptions {
  std::string name;
  Shape shape;
  DType dtype = DType::kFloat32;
  InitializerSpec init;
  bool trainable = true;
  // Worker-only: held by each Session, never sent to a server, not trainable.
  bool local = false;
  // Extra collections to join; GLOBAL/TRAINABLE/LOCAL_VARIABLES are implied.
  std::vector<std::string> collections;
};

struct MinimizeOptions {
  // Variables to update; empty means every trainable variable the loss
  // depends on.
  std::vector<Output> var_list;
  // A scalar float node (usually a non-trainable "learning_rate" variable)
  // whose value is sent with each push; unset means the servers' configured
  // rate.
  Output learning_rate;
  // An int64 scalar variable that counts applied steps; incremented by one
  // per applied step, on its server.
  Output global_step;
};

struct Node {
  int id = -1;
  std::string name;
  OpType op = OpType::kConstant;
  std::vector<int> inputs;
  DType dtype = DType::kFloat32;
  Shape shape;  // -1 for unknown dimensions

  Tensor value;                  // kConstant
  VariableOptions variable;      // kVariable
  MinimizeOptions minimize;      // kMinimize: inputs = {loss}
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  Output Placeholder(const std::string& name, DType dtype, Shape shape);
  Output Constant(const std::string& name, Tensor value);
  Output Variable(const VariableOptions& options);

  Output MatMul(Output a, Output b, const std::string& name = "");
  // Elementwise, broadcasting a scalar or a vector over the rows of a matrix.
  Output Add(Output a, Output b, const std::string& name = "");
  Output Sub(Output a, Output b, const std::string& name = "");
  Output Mul(Output a, Output b, const std::string& name = "");
  Output Relu(Output x, const std::string& name = "");
  Output Sigmoid(Output x, const std::string& name = "");
  Output Tanh(Output x, const std::string& name = "");
  Output Softmax(Output logits, const std::string& name = "");  // over the last dimension
  Output Square(Output x, const std::string& name = "");
  // Per-example losses [batch] from logits [batch, classes] and int64 labels [batch].
  Output SparseSoftmaxCrossEntropyWithLogits(Output logits, Output labels, const std::string& name = "");
  // Elementwise losses from logits and float labels of the same shape.
  Output SigmoidCrossEntropyWithLogits(Output logits, Output labels, const std::string& name = "");
  Output ReduceMean(Output x, const std::string& name = "");  // over every element: a scalar
  Output ReduceSum(Output x, const std::string& name = "");
  Output ArgMax(Output x, const std::string& name = "");      // over the last dimension: int64
  // Fraction of rows whose arg-max equals the int64 label: a float scalar.
  Output Accuracy(Output logits, Output labels, const std::string& name = "");
  // Sets (adds to) a variable when run; the op's value is the new value.
  Output Assign(Output variable, Output value, const std::string& name = "");
  Output AssignAdd(Output variable, Output delta, const std::string& name = "");
  // A train op: running it computes the gradients of `loss` and pushes them.
  Output Minimize(Output loss, const MinimizeOptions& options = {}, const std::string& name = "");

  // The first build error, or OK.
  const Status& status() const { return status_; }
  const Node& node(Output o) const { return nodes_[o.node]; }
  const Node& node(int id) const { return nodes_[id]; }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  StatusOr<Output> Find(const std::string& name) const;

  // Specs of every server-held (non-local) variable, in creation order.
  std::vector<VariableSpec> ServerVariables() const;
  // Collections declared by the graph's variables: name → variable names.
  std::map<std::string, std::vector<std::string>> DeclaredCollections() const;

 private:
  Output Add(Node node);
  Output Binary(OpType op, Output a, Output b, const std::string& name);
  Output Unary(OpType op, Output x, const std::string& name);
  Output AssignOp(OpType op, Output variable, Output value, const std::string& name);
  bool Check(Output o, const char* what);
  void Fail(const std::string& message);
  std::string UniqueName(const std::string& name, OpType op);

  std::vector<Node> nodes_;
  std::map<std::string, int> by_name_;
  Status status_;
};

// The shape a binary elementwise op produces, or an error: equal shapes, or
// one side a scalar, or one side a vector matching the other's last dim.
StatusOr<Shape> BroadcastShape(const Shape& a, const Shape& b);

}  // namespace cairn
