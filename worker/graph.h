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

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/sparse_spec.h"
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
  kSparseTable, kEmbeddingLookup, kEmbeddingBag,
  kConcat, kReshape,
  kColumnMean, kRsqrt, kDropout,
  kSelectColumns,
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

// An embedding table held by the servers: rows of `dim` floats keyed by
// int64 id, each created on its first update (common/sparse_spec.h). A
// graph reads it only through EmbeddingLookup and EmbeddingBag, and a
// Session pulls and pushes only the rows of the ids those read.
struct SparseTableOptions {
  std::string name;
  int32_t dim = 0;
  // Per row, seeded by (init.seed, id); the Glorot kinds are refused.
  InitializerSpec init;
  bool trainable = true;
  // Extra collections to join; GLOBAL/TRAINABLE_VARIABLES are implied.
  std::vector<std::string> collections;
};

// How EmbeddingBag pools the rows of a bag's present ids.
enum class Combiner { kSum, kMean };

struct MinimizeOptions {
  // Variables and sparse tables to update; empty means every trainable
  // variable and table the loss depends on.
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
  SparseTableOptions table;      // kSparseTable: shape [-1, dim]
  Combiner combiner = Combiner::kSum;  // kEmbeddingBag: inputs = {table, ids}
  int axis = 0;                  // kConcat, in [0, rank)
  float rate = 0;                // kDropout: inputs = {x, seed}, in [0, 1)
  uint64_t salt = 0;             // kDropout
  std::vector<int64_t> columns;  // kSelectColumns
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  Output Placeholder(const std::string& name, DType dtype, Shape shape);
  Output Constant(const std::string& name, Tensor value);
  Output Variable(const VariableOptions& options);
  // A sparse table's node: an input of lookups and bags (any other use is a
  // build error), a member of Minimize's var_list. An invalid spec is a
  // build error naming the table.
  Output SparseTable(const SparseTableOptions& options);

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
  // Elementwise 1 / sqrt(x), any shape. Elements <= 0 give inf or NaN, as
  // std::sqrt would: keep the input positive (a variance plus an epsilon).
  Output Rsqrt(Output x, const std::string& name = "");
  // Per-example losses [batch] from logits [batch, classes] and int64 labels [batch].
  Output SparseSoftmaxCrossEntropyWithLogits(Output logits, Output labels, const std::string& name = "");
  // Elementwise losses from logits and float labels of the same shape.
  Output SigmoidCrossEntropyWithLogits(Output logits, Output labels, const std::string& name = "");
  Output ReduceMean(Output x, const std::string& name = "");  // over every element: a scalar
  Output ReduceSum(Output x, const std::string& name = "");
  // The mean of each column over the rows: float32 [n, f] -> [f], n may be
  // unknown (batch normalization's statistics). Any other rank is a build
  // error; a run with n == 0 is InvalidArgument naming the node.
  Output ColumnMean(Output x, const std::string& name = "");
  // Inverted dropout: x * keep / (1 - rate), x float32 of any shape. keep
  // for flat element i is 1 iff U(salt, seed, i) >= rate, where U is the
  // top 24 bits of a SplitMix64 hash of (salt, seed, i) over 2^24: a pure
  // function of them, so a step's mask is the same on every run, thread
  // and machine. `seed` is an
  // int64 scalar node (a placeholder fed a per-step value); `salt` tells
  // apart the dropout layers that share one seed. `rate` must be in
  // [0, 1) (a build error naming the node otherwise); 0 is the identity.
  // Differentiable w.r.t. x only: grad = g * keep / (1 - rate).
  Output Dropout(Output x, Output seed, float rate, uint64_t salt, const std::string& name = "");
  Output ArgMax(Output x, const std::string& name = "");      // over the last dimension: int64
  // Fraction of rows whose arg-max equals the int64 label: a float scalar.
  Output Accuracy(Output logits, Output labels, const std::string& name = "");
  // Rows of a sparse table: int64 ids of any shape [...] -> float32
  // [..., dim]. Every id must be >= 0 (a negative one is a run-time
  // InvalidArgument naming the node). The ids may not depend on another
  // lookup or bag: a Run pulls every table's rows at once, before any
  // lookup is computed. Differentiable w.r.t. the table's rows only.
  Output EmbeddingLookup(Output table, Output ids, const std::string& name = "");
  // Pooled rows: int64 ids [batch, bag] -> float32 [batch, dim], the sum or
  // the mean of the rows of each bag's ids. A negative id is "no id"
  // (padding, a missing value): skipped, never pulled; an empty bag pools
  // to zeros, under either combiner. Otherwise as EmbeddingLookup.
  Output EmbeddingBag(Output table, Output ids, Combiner combiner, const std::string& name = "");
  // Float32 inputs of one rank, equal in every dimension but `axis` (which
  // may be negative, counting from the end), joined along it.
  Output Concat(const std::vector<Output>& inputs, int axis = 1, const std::string& name = "");
  // The same elements in `shape`; one dimension may be -1, inferred from
  // the element count at run time.
  Output Reshape(Output x, Shape shape, const std::string& name = "");
  // Columns `columns` (in that order, repeats allowed) of an int64 matrix
  // [n, c]: [n, columns.size()]. The ids of some of a click log's slots,
  // say. A column outside [0, c) is a build error when c is known, else a
  // run-time InvalidArgument naming the node. Not differentiable.
  Output SelectColumns(Output x, std::vector<int64_t> columns, const std::string& name = "");
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
  // Specs of every sparse table, in creation order.
  std::vector<SparseTableSpec> SparseTables() const;
  // Collections declared by the graph's variables and sparse tables: name →
  // variable and table names (tables are GLOBAL_VARIABLES, and
  // TRAINABLE_VARIABLES when trainable, like server-held variables).
  std::map<std::string, std::vector<std::string>> DeclaredCollections() const;

 private:
  Output Add(Node node);
  Output Binary(OpType op, Output a, Output b, const std::string& name);
  Output Unary(OpType op, Output x, const std::string& name);
  Output AssignOp(OpType op, Output variable, Output value, const std::string& name);
  Output Embedding(OpType op, Output table, Output ids, const std::string& name);
  // False (recording an error) unless `o` is a node of this graph; with
  // !allow_table, also unless it is something other than a sparse table.
  bool Check(Output o, const char* what, bool allow_table = false);
  bool DependsOnEmbedding(int node) const;
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
