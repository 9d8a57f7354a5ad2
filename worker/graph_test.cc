#include "worker/graph.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/session.h"
#include "worker/variable_store.h"

namespace cairn {
namespace {

VariableOptions Var(const std::string& name, Shape shape) {
  VariableOptions o;
  o.name = name;
  o.shape = std::move(shape);
  return o;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A store no test here reaches: a Session refuses a graph with a build error
// before it touches its store.
class UnreachedStore : public VariableStore {
 public:
  Status Create(const std::vector<VariableSpec>&, const OptimizerSpec&, const TrainingMode&) override {
    return Internal("the store was reached");
  }
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>&) override {
    return Internal("the store was reached");
  }
  Status Push(const PushBatch&) override { return Internal("the store was reached"); }
};

SparseTableOptions Table(const std::string& name, int32_t dim) {
  SparseTableOptions o;
  o.name = name;
  o.dim = dim;
  o.init.kind = InitKind::kUniform;
  o.init.seed = 7;
  return o;
}

// The graph's build error, and that a Session refuses the graph.
void ExpectBuildError(const Graph& g, const std::vector<std::string>& named) {
  ASSERT_FALSE(g.status().ok());
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << g.status();
  for (const std::string& name : named) EXPECT_TRUE(Contains(g.status().message(), name)) << g.status();
  UnreachedStore store;
  StatusOr<std::unique_ptr<Session>> s = Session::Create(&g, &store);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(s.status().message(), g.status().message())) << s.status();
}

// --- Shape inference ---------------------------------------------------------

TEST(GraphShapes, MatMulOfUnknownBatchKeepsTheBatchDimensionUnknown) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 784});
  Output w = g.Variable(Var("w", {784, 10}));
  Output y = g.MatMul(x, w);
  ASSERT_TRUE(g.status().ok()) << g.status();
  EXPECT_EQ(g.node(y).shape, (Shape{-1, 10}));
  EXPECT_EQ(g.node(y).dtype, DType::kFloat32);
  EXPECT_EQ(g.node(y).op, OpType::kMatMul);
  EXPECT_EQ(g.node(y).inputs, (std::vector<int>{x.node, w.node}));
}

TEST(GraphShapes, MatMulAcceptsAnUnknownInnerDimension) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {4, -1});
  Output w = g.Variable(Var("w", {3, 2}));
  EXPECT_EQ(g.node(g.MatMul(x, w)).shape, (Shape{4, 2}));
  EXPECT_TRUE(g.status().ok()) << g.status();
}

TEST(GraphShapes, BroadcastShapeFollowsTheDocumentedRules) {
  auto broadcast = [](const Shape& a, const Shape& b) {
    StatusOr<Shape> s = BroadcastShape(a, b);
    EXPECT_TRUE(s.ok()) << ShapeString(a) << " and " << ShapeString(b) << ": " << s.status();
    return s.ok() ? *s : Shape{-99};
  };
  EXPECT_EQ(broadcast({3, 4}, {3, 4}), (Shape{3, 4}));
  EXPECT_EQ(broadcast({-1, 4}, {5, 4}), (Shape{5, 4}));   // an unknown dim takes the known one
  EXPECT_EQ(broadcast({5, 4}, {-1, 4}), (Shape{5, 4}));
  EXPECT_EQ(broadcast({-1, 4}, {-1, 4}), (Shape{-1, 4}));
  EXPECT_EQ(broadcast({3, 4}, {}), (Shape{3, 4}));        // scalars
  EXPECT_EQ(broadcast({}, {3, 4}), (Shape{3, 4}));
  EXPECT_EQ(broadcast({3, 4}, {1}), (Shape{3, 4}));
  EXPECT_EQ(broadcast({1}, {3, 4}), (Shape{3, 4}));
  EXPECT_EQ(broadcast({-1, 4}, {4}), (Shape{-1, 4}));     // a row over every row
  EXPECT_EQ(broadcast({4}, {-1, 4}), (Shape{-1, 4}));
  EXPECT_EQ(broadcast({}, {}), (Shape{}));

  for (auto [a, b] : std::vector<std::pair<Shape, Shape>>{
           {{3, 4}, {3}}, {{3, 4}, {4, 3}}, {{3, 4}, {2, 4}}, {{2}, {3}}, {{3, 4}, {3, 4, 1}}, {{2, 3, 4}, {4}}}) {
    StatusOr<Shape> s = BroadcastShape(a, b);
    ASSERT_FALSE(s.ok()) << ShapeString(a) << " and " << ShapeString(b);
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(s.status().message(), ShapeString(a))) << s.status();
    EXPECT_TRUE(Contains(s.status().message(), ShapeString(b))) << s.status();
  }
}

TEST(GraphShapes, ElementwiseBuildersInferTheBroadcastShape) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 10});
  Output b = g.Variable(Var("b", {10}));
  Output s = g.Constant("s", Tensor::FromVector({}, {2}));
  EXPECT_EQ(g.node(g.Add(x, b)).shape, (Shape{-1, 10}));
  EXPECT_EQ(g.node(g.Sub(b, x)).shape, (Shape{-1, 10}));
  EXPECT_EQ(g.node(g.Mul(s, x)).shape, (Shape{-1, 10}));
  EXPECT_EQ(g.node(g.Mul(b, s)).shape, (Shape{10}));
  ASSERT_TRUE(g.status().ok()) << g.status();
}

TEST(GraphShapes, UnaryReductionAndLossBuildersInferTheirShapes) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 10});
  Output labels = g.Placeholder("labels", DType::kInt64, {-1});
  for (Output u : {g.Relu(x), g.Sigmoid(x), g.Tanh(x), g.Softmax(x), g.Square(x)}) {
    EXPECT_EQ(g.node(u).shape, (Shape{-1, 10})) << g.node(u).name;
    EXPECT_EQ(g.node(u).dtype, DType::kFloat32);
  }
  Output xent = g.SparseSoftmaxCrossEntropyWithLogits(x, labels);
  EXPECT_EQ(g.node(xent).shape, (Shape{-1}));
  EXPECT_EQ(g.node(xent).dtype, DType::kFloat32);
  EXPECT_EQ(g.node(g.SigmoidCrossEntropyWithLogits(x, x)).shape, (Shape{-1, 10}));
  EXPECT_EQ(g.node(g.ReduceMean(xent)).shape, (Shape{}));
  EXPECT_EQ(g.node(g.ReduceSum(x)).shape, (Shape{}));
  Output argmax = g.ArgMax(x);
  EXPECT_EQ(g.node(argmax).shape, (Shape{-1}));
  EXPECT_EQ(g.node(argmax).dtype, DType::kInt64);
  Output acc = g.Accuracy(x, labels);
  EXPECT_EQ(g.node(acc).shape, (Shape{}));
  EXPECT_EQ(g.node(acc).dtype, DType::kFloat32);
  EXPECT_TRUE(g.status().ok()) << g.status();
}

TEST(GraphShapes, AssignTakesTheVariablesShapeAndDtype) {
  Graph g;
  VariableOptions o = Var("step", {});
  o.dtype = DType::kInt64;
  o.trainable = false;
  Output step = g.Variable(o);
  Tensor one(DType::kInt64, {});
  Output inc = g.AssignAdd(step, g.Constant("one", one));
  EXPECT_EQ(g.node(inc).shape, (Shape{}));
  EXPECT_EQ(g.node(inc).dtype, DType::kInt64);
  // A value with the variable's element count but another shape is accepted.
  Output w = g.Variable(Var("w", {2, 3}));
  Output set = g.Assign(w, g.Constant("flat", Tensor::FromVector({6}, {1, 2, 3, 4, 5, 6})));
  EXPECT_EQ(g.node(set).shape, (Shape{2, 3}));
  EXPECT_TRUE(g.status().ok()) << g.status();
}

// --- Build errors ------------------------------------------------------------

TEST(GraphBuildErrors, MatMulOfIncompatibleShapesNamesBothInputs) {
  Graph g;
  Output x = g.Placeholder("images", DType::kFloat32, {-1, 784});
  Output w = g.Variable(Var("weights", {100, 10}));
  Output y = g.MatMul(x, w);
  EXPECT_TRUE(y.valid());  // a handle comes back anyway
  ExpectBuildError(g, {"'images'", "'weights'", "[-1, 784]", "[100, 10]"});
}

TEST(GraphBuildErrors, MatMulOfANonMatrixIsAnError) {
  Graph g;
  g.MatMul(g.Placeholder("v", DType::kFloat32, {4}), g.Variable(Var("w", {4, 2})));
  ExpectBuildError(g, {"'v'"});
}

TEST(GraphBuildErrors, AddOfShapesThatDoNotBroadcastNamesBothInputs) {
  Graph g;
  g.Add(g.Placeholder("a", DType::kFloat32, {-1, 3}), g.Variable(Var("b", {4})));
  ExpectBuildError(g, {"'a'", "'b'"});
}

TEST(GraphBuildErrors, AssignToANonVariableNamesTheTarget) {
  Graph g;
  Output c = g.Constant("not_a_var", Tensor::FromVector({2}, {1, 2}));
  g.Assign(c, g.Constant("value", Tensor::FromVector({2}, {3, 4})));
  ExpectBuildError(g, {"'not_a_var'", "not a variable"});
}

TEST(GraphBuildErrors, AssignAddOfTheWrongDtypeOrSizeNamesTheVariable) {
  {
    Graph g;
    Output w = g.Variable(Var("w", {2}));
    g.AssignAdd(w, g.Constant("three", Tensor::FromVector({3}, {1, 2, 3})));
    ExpectBuildError(g, {"'w'", "'three'"});
  }
  {
    Graph g;
    Output w = g.Variable(Var("w", {2}));
    g.Assign(w, g.Constant("ints", Tensor(DType::kInt64, {2})));
    ExpectBuildError(g, {"'w'", "'ints'"});
  }
}

TEST(GraphBuildErrors, DuplicateNodeNameIsAnErrorNamingIt) {
  Graph g;
  Output first = g.Placeholder("x", DType::kFloat32, {2});
  Output second = g.Variable(Var("x", {2}));
  EXPECT_NE(first, second);
  ExpectBuildError(g, {"'x'"});
  // Find still returns the first node of that name.
  StatusOr<Output> found = g.Find("x");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, first);
}

TEST(GraphBuildErrors, MinimizeOfANonScalarNamesTheLoss) {
  Graph g;
  Output w = g.Variable(Var("w", {3}));
  g.Minimize(g.Square(w, "per_element_loss"));
  ExpectBuildError(g, {"'per_element_loss'", "scalar"});
}

TEST(GraphBuildErrors, MinimizeWithANonInt64GlobalStepIsAnError) {
  Graph g;
  Output w = g.Variable(Var("w", {3}));
  MinimizeOptions mo;
  mo.global_step = g.Variable(Var("step", {}));  // float32
  g.Minimize(g.ReduceSum(w), mo);
  ExpectBuildError(g, {"global_step"});
}

TEST(GraphBuildErrors, MinimizeVarListOfANonVariableNamesIt) {
  Graph g;
  Output w = g.Variable(Var("w", {3}));
  Output sq = g.Square(w, "squared");
  MinimizeOptions mo;
  mo.var_list = {sq};
  g.Minimize(g.ReduceSum(sq), mo);
  ExpectBuildError(g, {"'squared'"});
}

TEST(GraphBuildErrors, LossOfTheWrongDtypeOrRankIsAnError) {
  {
    Graph g;
    Output logits = g.Placeholder("logits", DType::kFloat32, {-1, 10});
    g.SparseSoftmaxCrossEntropyWithLogits(logits, g.Placeholder("float_labels", DType::kFloat32, {-1}));
    ExpectBuildError(g, {"'float_labels'"});
  }
  {
    Graph g;
    Output logits = g.Placeholder("logits", DType::kFloat32, {-1, 10});
    g.SigmoidCrossEntropyWithLogits(logits, g.Placeholder("row", DType::kFloat32, {10}));
    ExpectBuildError(g, {"same shape"});
  }
  {
    Graph g;
    g.ArgMax(g.Placeholder("v", DType::kFloat32, {10}));
    ExpectBuildError(g, {"ArgMax"});
  }
}

TEST(GraphBuildErrors, FloatOpsOfInt64InputsAreErrors) {
  Graph g;
  Output ids = g.Placeholder("ids", DType::kInt64, {-1});
  g.Relu(ids);
  ExpectBuildError(g, {"'ids'", "float32"});
}

TEST(GraphBuildErrors, AnInvalidHandleIsAnError) {
  Graph g;
  g.Relu(Output{});
  g.Add(g.Constant("c", Tensor::FromVector({}, {1})), Output{42});
  ExpectBuildError(g, {"not a node of this graph"});
}

TEST(GraphBuildErrors, TheFirstErrorIsKept) {
  Graph g;
  Output c = g.Constant("c", Tensor::FromVector({2}, {1, 2}));
  g.Assign(c, c);                       // first: not a variable
  g.MatMul(c, c, "second_error");       // second: not matrices
  ASSERT_FALSE(g.status().ok());
  EXPECT_TRUE(Contains(g.status().message(), "not a variable")) << g.status();
  EXPECT_FALSE(Contains(g.status().message(), "MatMul")) << g.status();
}

TEST(GraphBuildErrors, InvalidVariableSpecsAreErrors) {
  {
    Graph g;
    g.Variable(Var("", {2}));
    ExpectBuildError(g, {"name"});
  }
  {
    Graph g;
    g.Variable(Var("unknown_dim", {-1, 2}));
    ExpectBuildError(g, {"'unknown_dim'"});
  }
  {
    Graph g;
    VariableOptions o = Var("counter", {});
    o.dtype = DType::kInt64;  // trainable by default
    g.Variable(o);
    ExpectBuildError(g, {"'counter'", "trainable"});
  }
}

// A local variable is "not trainable" (VariableOptions::local), so an int64
// local counter needs no trainable = false of its own.
TEST(GraphVariables, LocalInt64VariableNeedsNoExplicitTrainableFalse) {
  Graph g;
  VariableOptions o = Var("examples_seen", {});
  o.dtype = DType::kInt64;
  o.local = true;
  Output v = g.Variable(o);
  EXPECT_TRUE(g.status().ok()) << g.status();
  EXPECT_FALSE(g.node(v).variable.trainable);
}

TEST(GraphVariables, LocalVariablesAreNeverTrainable) {
  Graph g;
  VariableOptions o = Var("local_sum", {3});
  o.local = true;  // trainable left at its default, true
  Output v = g.Variable(o);
  ASSERT_TRUE(g.status().ok()) << g.status();
  EXPECT_FALSE(g.node(v).variable.trainable);
  EXPECT_TRUE(g.node(v).variable.local);
}

// --- Find, ServerVariables, DeclaredCollections ------------------------------

TEST(GraphFind, FindsNodesByNameAndNamesUnnamedOnesAfterTheirOp) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 2});
  Output r0 = g.Relu(x);
  Output r1 = g.Relu(r0);
  Output named = g.Tanh(r1, "activation");
  ASSERT_TRUE(g.status().ok()) << g.status();
  EXPECT_EQ(g.node(r0).name, "Relu_0");
  EXPECT_EQ(g.node(r1).name, "Relu_1");
  EXPECT_EQ(g.num_nodes(), 4);
  for (Output o : {x, r0, r1, named}) {
    StatusOr<Output> found = g.Find(g.node(o).name);
    ASSERT_TRUE(found.ok()) << g.node(o).name;
    EXPECT_EQ(*found, o);
    EXPECT_EQ(g.node(o).id, o.node);
  }
}

TEST(GraphFind, AnUnknownNameIsNotFoundNamingIt) {
  Graph g;
  g.Placeholder("x", DType::kFloat32, {2});
  StatusOr<Output> found = g.Find("y");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(found.status().message(), "'y'")) << found.status();
}

TEST(GraphVariables, ServerVariablesListsEveryNonLocalVariableInCreationOrder) {
  Graph g;
  VariableOptions w = Var("w", {3, 2});
  w.init.kind = InitKind::kGlorotUniform;
  w.init.seed = 9;
  g.Variable(w);
  VariableOptions local = Var("local_count", {});
  local.local = true;
  g.Variable(local);
  VariableOptions step = Var("global_step", {});
  step.dtype = DType::kInt64;
  step.trainable = false;
  g.Variable(step);
  g.Placeholder("x", DType::kFloat32, {-1, 3});
  ASSERT_TRUE(g.status().ok()) << g.status();

  const std::vector<VariableSpec> specs = g.ServerVariables();
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].name, "w");
  EXPECT_EQ(specs[0].shape, (Shape{3, 2}));
  EXPECT_EQ(specs[0].dtype, DType::kFloat32);
  EXPECT_EQ(specs[0].init, w.init);
  EXPECT_TRUE(specs[0].trainable);
  EXPECT_EQ(specs[1].name, "global_step");
  EXPECT_EQ(specs[1].dtype, DType::kInt64);
  EXPECT_FALSE(specs[1].trainable);
}

TEST(GraphVariables, DeclaredCollectionsSortVariablesByKindAndUserCollection) {
  Graph g;
  VariableOptions w = Var("w", {2});
  w.collections = {"weights", "regularized"};
  g.Variable(w);
  VariableOptions mean = Var("mean", {2});
  mean.trainable = false;
  mean.collections = {"statistics"};
  g.Variable(mean);
  VariableOptions local = Var("local_total", {});
  local.local = true;
  local.collections = {"statistics"};
  g.Variable(local);
  g.Variable(Var("b", {2}));
  g.Placeholder("x", DType::kFloat32, {2});
  ASSERT_TRUE(g.status().ok()) << g.status();

  using Names = std::vector<std::string>;
  const auto c = g.DeclaredCollections();
  ASSERT_EQ(c.count(collections::kGlobalVariables), 1u);
  EXPECT_EQ(c.at(collections::kGlobalVariables), (Names{"w", "mean", "b"}));
  EXPECT_EQ(c.at(collections::kTrainableVariables), (Names{"w", "b"}));
  EXPECT_EQ(c.at(collections::kLocalVariables), (Names{"local_total"}));
  EXPECT_EQ(c.at("weights"), (Names{"w"}));
  EXPECT_EQ(c.at("regularized"), (Names{"w"}));
  EXPECT_EQ(c.at("statistics"), (Names{"mean", "local_total"}));
  EXPECT_EQ(c.size(), 6u);  // no placeholder, no other collection
}

TEST(GraphVariables, AGraphWithoutVariablesDeclaresNoCollections) {
  Graph g;
  g.Relu(g.Placeholder("x", DType::kFloat32, {2}));
  EXPECT_TRUE(g.DeclaredCollections().empty());
  EXPECT_TRUE(g.ServerVariables().empty());
}

// --- Sparse tables and their lookups -----------------------------------------

TEST(GraphSparseTables, SparseTablesListsEveryTableInCreationOrder) {
  Graph g;
  SparseTableOptions frozen = Table("emb/item", 4);
  frozen.trainable = false;
  frozen.init.kind = InitKind::kConstant;
  frozen.init.value = 0.5;
  g.SparseTable(Table("emb/user", 16));
  g.Variable(Var("w", {2}));
  g.SparseTable(frozen);
  ASSERT_TRUE(g.status().ok()) << g.status();
  const std::vector<SparseTableSpec> tables = g.SparseTables();
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0], (SparseTableSpec{"emb/user", 16, Table("emb/user", 16).init, true}));
  EXPECT_EQ(tables[1], (SparseTableSpec{"emb/item", 4, frozen.init, false}));
  // Tables are not dense variables.
  ASSERT_EQ(g.ServerVariables().size(), 1u);
  EXPECT_EQ(g.ServerVariables()[0].name, "w");
}

TEST(GraphSparseTables, TablesJoinTheVariableCollectionsAndTheirOwn) {
  Graph g;
  SparseTableOptions user = Table("emb/user", 8);
  user.collections = {"embeddings"};
  SparseTableOptions frozen = Table("emb/frozen", 8);
  frozen.trainable = false;
  g.Variable(Var("w", {2}));
  g.SparseTable(user);
  g.SparseTable(frozen);
  const auto c = g.DeclaredCollections();
  EXPECT_EQ(c.at(collections::kGlobalVariables), (std::vector<std::string>{"w", "emb/user", "emb/frozen"}));
  EXPECT_EQ(c.at(collections::kTrainableVariables), (std::vector<std::string>{"w", "emb/user"}));
  EXPECT_EQ(c.at("embeddings"), (std::vector<std::string>{"emb/user"}));
  EXPECT_FALSE(c.count(collections::kLocalVariables));
}

TEST(GraphSparseTables, LookupAndBagShapesEndInTheTablesDim) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 8));
  EXPECT_EQ(g.node(table).shape, (Shape{-1, 8}));
  Output ids = g.Placeholder("ids", DType::kInt64, {-1});
  Output slots = g.Placeholder("slots", DType::kInt64, {-1, 3});
  EXPECT_EQ(g.node(g.EmbeddingLookup(table, ids)).shape, (Shape{-1, 8}));
  EXPECT_EQ(g.node(g.EmbeddingLookup(table, slots)).shape, (Shape{-1, 3, 8}));
  Output bag = g.EmbeddingBag(table, slots, Combiner::kMean, "bag");
  EXPECT_EQ(g.node(bag).shape, (Shape{-1, 8}));
  EXPECT_EQ(g.node(bag).combiner, Combiner::kMean);
  EXPECT_EQ(g.node(bag).dtype, DType::kFloat32);
  EXPECT_TRUE(g.status().ok()) << g.status();
}

TEST(GraphBuildErrors, AGlorotInitializedTableIsAnErrorNamingIt) {
  Graph g;
  SparseTableOptions o = Table("emb/user", 8);
  o.init.kind = InitKind::kGlorotUniform;
  g.SparseTable(o);
  ExpectBuildError(g, {"'emb/user'", "glorot_uniform"});
}

TEST(GraphBuildErrors, ATableOfDimZeroIsAnErrorNamingIt) {
  Graph g;
  g.SparseTable(Table("emb/user", 0));
  ExpectBuildError(g, {"'emb/user'", "dim"});
}

TEST(GraphBuildErrors, ATableUsedAsAnOrdinaryInputIsAnErrorNamingIt) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  g.MatMul(g.Placeholder("x", DType::kFloat32, {1, 1}), table);
  ExpectBuildError(g, {"'emb'", "EmbeddingLookup"});

  Graph h;
  Output t = h.SparseTable(Table("emb", 2));
  h.Assign(t, h.Constant("zeros", Tensor(DType::kFloat32, {1, 2})));
  ExpectBuildError(h, {"'emb'"});
}

TEST(GraphBuildErrors, ALookupOfANonTableOrByNonInt64IdsNamesBoth) {
  Graph g;
  Output w = g.Variable(Var("w", {4, 2}));
  g.EmbeddingLookup(w, g.Placeholder("ids", DType::kInt64, {-1}));
  ExpectBuildError(g, {"'w'", "not a sparse table"});

  Graph h;
  Output table = h.SparseTable(Table("emb", 2));
  h.EmbeddingLookup(table, h.Placeholder("fids", DType::kFloat32, {-1}));
  ExpectBuildError(h, {"'emb'", "'fids'", "int64"});
}

TEST(GraphBuildErrors, ABagOfIdsThatAreNotAMatrixNamesThem) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  g.EmbeddingBag(table, g.Placeholder("ids", DType::kInt64, {-1}), Combiner::kSum);
  ExpectBuildError(g, {"'ids'", "[batch, bag]"});
}

TEST(GraphBuildErrors, IdsThatDependOnALookupAreAnError) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 3));
  Output first = g.EmbeddingLookup(table, g.Placeholder("ids", DType::kInt64, {-1}), "first");
  g.EmbeddingLookup(table, g.ArgMax(first, "picked"), "second");
  ExpectBuildError(g, {"'picked'", "depend on an embedding lookup"});
}

TEST(GraphSparseTables, MinimizeVarListMayNameATable) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  Output e = g.EmbeddingLookup(table, g.Placeholder("ids", DType::kInt64, {-1}));
  MinimizeOptions o;
  o.var_list = {table};
  g.Minimize(g.ReduceSum(e), o);
  EXPECT_TRUE(g.status().ok()) << g.status();
}

// --- Concat and Reshape --------------------------------------------------------

TEST(GraphShapes, ConcatAddsTheAxisAndKeepsAnUnknownBatch) {
  Graph g;
  Output a = g.Placeholder("a", DType::kFloat32, {-1, 16});
  Output b = g.Placeholder("b", DType::kFloat32, {-1, 13});
  EXPECT_EQ(g.node(g.Concat({a, a, b})).shape, (Shape{-1, 45}));
  EXPECT_EQ(g.node(g.Concat({a, b}, -1)).shape, (Shape{-1, 29}));
  EXPECT_EQ(g.node(g.Concat({a, a}, 0)).shape, (Shape{-1, 16}));
  Output c = g.Placeholder("c", DType::kFloat32, {4, 2});
  EXPECT_EQ(g.node(g.Concat({c, c}, 0)).shape, (Shape{8, 2}));
  EXPECT_TRUE(g.status().ok()) << g.status();
}

TEST(GraphBuildErrors, ConcatOfMismatchedOrNonFloatInputsNamesThem) {
  Graph g;
  g.Concat({g.Placeholder("a", DType::kFloat32, {2, 3}), g.Placeholder("b", DType::kFloat32, {3, 3})}, 1);
  ExpectBuildError(g, {"'a'", "'b'"});

  Graph h;
  h.Concat({h.Placeholder("a", DType::kFloat32, {2, 3}), h.Placeholder("ids", DType::kInt64, {2, 3})});
  ExpectBuildError(h, {"'ids'", "float32"});

  Graph k;
  k.Concat({k.Placeholder("a", DType::kFloat32, {2, 3})}, 2);
  ExpectBuildError(k, {"axis 2"});

  Graph e;
  e.Concat({});
  ExpectBuildError(e, {"no inputs"});
}

TEST(GraphShapes, ReshapeInfersItsUnknownDimensionWhenTheInputIsKnown) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {2, 3});
  EXPECT_EQ(g.node(g.Reshape(x, {3, -1})).shape, (Shape{3, 2}));
  EXPECT_EQ(g.node(g.Reshape(x, {6})).shape, (Shape{6}));
  Output batch = g.Placeholder("batch", DType::kFloat32, {-1, 1});
  EXPECT_EQ(g.node(g.Reshape(batch, {-1})).shape, (Shape{-1}));
  EXPECT_TRUE(g.status().ok()) << g.status();
}

TEST(GraphBuildErrors, ReshapeToAnotherElementCountOrTwoUnknownsIsAnError) {
  Graph g;
  g.Reshape(g.Placeholder("x", DType::kFloat32, {2, 3}), {4});
  ExpectBuildError(g, {"'x'", "[4]"});

  Graph h;
  h.Reshape(h.Placeholder("x", DType::kFloat32, {-1, 3}), {-1, -1});
  ExpectBuildError(h, {"'x'", "at most one -1"});
}

TEST(GraphShapes, ColumnMeanKeepsTheColumnsAndRsqrtAndDropoutTheShape) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 10});
  Output seed = g.Placeholder("seed", DType::kInt64, {});
  EXPECT_EQ(g.node(g.ColumnMean(x)).shape, (Shape{10}));
  EXPECT_EQ(g.node(g.Rsqrt(x)).shape, (Shape{-1, 10}));
  Output d = g.Dropout(x, seed, 0.25f, 3);
  EXPECT_EQ(g.node(d).shape, (Shape{-1, 10}));
  EXPECT_EQ(g.node(d).dtype, DType::kFloat32);
  EXPECT_EQ(g.node(d).rate, 0.25f);
  EXPECT_EQ(g.node(d).salt, 3u);
  EXPECT_TRUE(g.status().ok()) << g.status();
}

TEST(GraphBuildErrors, ColumnMeanOfANonMatrixNamesTheNodeAndTheInput) {
  Graph g;
  g.ColumnMean(g.Placeholder("v", DType::kFloat32, {10}), "mean");
  ExpectBuildError(g, {"'mean'", "'v'", "[rows, columns]"});

  Graph h;
  h.ColumnMean(h.Placeholder("t", DType::kFloat32, {2, 3, 4}), "mean");
  ExpectBuildError(h, {"'mean'", "'t'"});
}

TEST(GraphBuildErrors, DropoutRateOutsideZeroToOneNamesTheNode) {
  for (float rate : {1.0f, -0.1f, 1.5f, std::nanf("")}) {
    SCOPED_TRACE(rate);
    Graph g;
    Output x = g.Placeholder("x", DType::kFloat32, {-1, 4});
    g.Dropout(x, g.Placeholder("seed", DType::kInt64, {}), rate, 0, "drop");
    ExpectBuildError(g, {"'drop'", "rate", "[0, 1)"});
  }
}

TEST(GraphBuildErrors, DropoutSeedThatIsNotAnInt64ScalarNamesIt) {
  Graph g;
  Output x = g.Placeholder("x", DType::kFloat32, {-1, 4});
  g.Dropout(x, g.Placeholder("fseed", DType::kFloat32, {}), 0.5f, 0, "drop");
  ExpectBuildError(g, {"'drop'", "'fseed'", "int64 scalar"});

  Graph h;
  Output y = h.Placeholder("x", DType::kFloat32, {-1, 4});
  h.Dropout(y, h.Placeholder("seeds", DType::kInt64, {2}), 0.5f, 0, "drop");
  ExpectBuildError(h, {"'drop'", "'seeds'", "int64 scalar"});
}

TEST(GraphOpNames, EveryOpTypeHasItsName) {
  EXPECT_STREQ(OpTypeName(OpType::kMatMul), "MatMul");
  EXPECT_STREQ(OpTypeName(OpType::kSparseSoftmaxCrossEntropyWithLogits), "SparseSoftmaxCrossEntropyWithLogits");
  EXPECT_STREQ(OpTypeName(OpType::kAssignAdd), "AssignAdd");
  EXPECT_STREQ(OpTypeName(OpType::kMinimize), "Minimize");
  EXPECT_STREQ(OpTypeName(OpType::kPlaceholder), "Placeholder");
  EXPECT_STREQ(OpTypeName(OpType::kSparseTable), "SparseTable");
  EXPECT_STREQ(OpTypeName(OpType::kEmbeddingLookup), "EmbeddingLookup");
  EXPECT_STREQ(OpTypeName(OpType::kEmbeddingBag), "EmbeddingBag");
  EXPECT_STREQ(OpTypeName(OpType::kConcat), "Concat");
  EXPECT_STREQ(OpTypeName(OpType::kReshape), "Reshape");
  EXPECT_STREQ(OpTypeName(OpType::kColumnMean), "ColumnMean");
  EXPECT_STREQ(OpTypeName(OpType::kRsqrt), "Rsqrt");
  EXPECT_STREQ(OpTypeName(OpType::kSelectColumns), "SelectColumns");
  EXPECT_STREQ(OpTypeName(OpType::kDropout), "Dropout");
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

TEST(GraphSelectColumns, KeepsTheChosenColumnsInOrderAndRefusesOthers) {
  Graph g;
  Output ids = g.Placeholder("ids", DType::kInt64, {-1, 4});
  Output picked = g.SelectColumns(ids, {3, 0, 3}, "picked");
  ASSERT_TRUE(g.status().ok()) << g.status();
  EXPECT_EQ(g.node(picked).shape, (Shape{-1, 3}));
  Graph bad;
  Output x = bad.Placeholder("ids", DType::kInt64, {-1, 4});
  bad.SelectColumns(x, {4}, "out_of_range");
  EXPECT_NE(bad.status().message().find("column 4 outside [0, 4)"), std::string::npos) << bad.status();
  Graph floats;
  floats.SelectColumns(floats.Placeholder("f", DType::kFloat32, {-1, 4}), {0}, "of_floats");
  EXPECT_NE(floats.status().message().find("needs an int64 matrix"), std::string::npos) << floats.status();
}

}  // namespace
}  // namespace cairn
