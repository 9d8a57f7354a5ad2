// Tests of sparse tables in a Session: what EmbeddingLookup and
// EmbeddingBag compute, which rows a Run pulls (once, sorted, unique) and
// which it pushes (each touched id once, gradients summed), and gradients
// checked against central differences of the loss in the table's rows.
//
// The store holds rows as plain values (no optimizer): a test sets rows,
// reads what was pulled, and reads the last batch pushed. tests/
// session_test.cc trains through the servers' tables.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/sparse_spec.h"
#include "worker/graph.h"
#include "worker/ops.h"
#include "worker/session.h"
#include "worker/variable_store.h"

namespace cairn {
namespace {

constexpr double kEps = 1e-3;
constexpr double kAbsTol = 1e-3;
constexpr double kRelTol = 1e-2;

double Uniform(std::mt19937_64* rng, double lo, double hi) {
  return lo + (hi - lo) * (static_cast<double>((*rng)() >> 11) * (1.0 / 9007199254740992.0));
}

Tensor RandomTensor(std::mt19937_64* rng, Shape shape) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = static_cast<float>(Uniform(rng, -1, 1));
  return t;
}

Tensor Ids(Shape shape, const std::vector<int64_t>& ids) {
  Tensor t(DType::kInt64, std::move(shape));
  EXPECT_EQ(t.num_elements(), static_cast<int64_t>(ids.size()));
  std::copy(ids.begin(), ids.end(), t.data<int64_t>());
  return t;
}

std::vector<int64_t> IdList(const Tensor& t) { return {t.data<int64_t>(), t.data<int64_t>() + t.num_elements()}; }
std::vector<float> Floats(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.num_elements()}; }

SparseTableOptions Table(const std::string& name, int32_t dim, uint64_t seed = 3) {
  SparseTableOptions o;
  o.name = name;
  o.dim = dim;
  o.init.kind = InitKind::kUniform;
  o.init.minval = -1;
  o.init.maxval = 1;
  o.init.seed = seed;
  return o;
}

// Dense variables as plain values (zeros, set by assigns) and sparse rows as
// plain values (their initial values until a test sets them). Gradients are
// not applied; every sparse pull and the last push are kept (deep copies).
class SparseCapturingStore : public VariableStore {
 public:
  Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec&, const TrainingMode&) override {
    for (const VariableSpec& spec : specs) values_.try_emplace(spec.name, spec.dtype, spec.shape);
    return Status::OK();
  }
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) override {
    std::map<std::string, Tensor> out;
    for (const std::string& name : names) out[name] = values_.at(name).Clone();
    return out;
  }
  Status CreateSparse(const std::vector<SparseTableSpec>& tables, const OptimizerSpec& optimizer) override {
    created = tables;
    optimizer_kind = optimizer.kind;
    for (const SparseTableSpec& t : tables) tables_[t.name] = t;
    return Status::OK();
  }
  StatusOr<std::map<std::string, Tensor>> SparsePull(const std::map<std::string, Tensor>& ids) override {
    std::map<std::string, Tensor> out;
    std::map<std::string, std::vector<int64_t>> request;
    for (const auto& [name, t] : ids) {
      auto table = tables_.find(name);
      if (table == tables_.end()) return NotFound("no sparse table '" + name + "'");
      request[name] = IdList(t);
      Tensor rows(DType::kFloat32, {t.num_elements(), table->second.dim});
      for (int64_t i = 0; i < t.num_elements(); ++i) {
        const std::vector<float> row = Row(name, t.data<int64_t>()[i]);
        std::copy(row.begin(), row.end(), rows.data<float>() + i * table->second.dim);
      }
      out[name] = std::move(rows);
    }
    sparse_pulls.push_back(std::move(request));
    return out;
  }
  Status Push(const PushBatch& batch) override {
    last = PushBatch{};
    for (const auto& [name, t] : batch.gradients) last.gradients[name] = t.Clone();
    for (const auto& [name, u] : batch.sparse_gradients) {
      last.sparse_gradients[name] = SparseRowsUpdate{u.ids.Clone(), u.values.Clone()};
    }
    last.train_step = batch.train_step;
    for (const auto& [name, t] : batch.assigns) values_.at(name) = t.Clone();
    return Status::OK();
  }

  std::vector<float> Row(const std::string& table, int64_t id) const {
    auto it = rows_.find({table, id});
    if (it != rows_.end()) return it->second;
    const SparseTableSpec& spec = tables_.at(table);
    std::vector<float> row(spec.dim);
    InitializeSparseRow(spec, id, row.data());
    return row;
  }
  void SetRow(const std::string& table, int64_t id, std::vector<float> row) { rows_[{table, id}] = std::move(row); }

  std::vector<SparseTableSpec> created;
  std::string optimizer_kind;
  // Every SparsePull: table -> the ids asked for, in order.
  std::vector<std::map<std::string, std::vector<int64_t>>> sparse_pulls;
  PushBatch last;

 private:
  std::map<std::string, Tensor> values_;
  std::map<std::string, SparseTableSpec> tables_;
  std::map<std::pair<std::string, int64_t>, std::vector<float>> rows_;
};

std::unique_ptr<Session> NewSession(const Graph& g, VariableStore* store) {
  EXPECT_TRUE(g.status().ok()) << g.status();
  SessionOptions o;
  o.optimizer.kind = "adagrad";
  StatusOr<std::unique_ptr<Session>> s = Session::Create(&g, store, o);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return nullptr;
  EXPECT_TRUE((*s)->Initialize().ok());
  return std::move(*s);
}

// loss = ReduceSum(y * R) over sparse tables and trainable dense inputs,
// with fixed ids fed; compares what one Minimize step pushes with central
// differences of the loss in every pushed row and every dense input.
//
//   SparseGradientCheck check(seed);
//   Output t = check.Table("emb", 3);
//   Output ids = check.Ids("ids", Ids({4}, {5, 1, 5, 2}));
//   ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().EmbeddingLookup(t, ids)));
//   check.ExpectGradientsMatchFiniteDifferences({{"emb", {1, 2, 5}}});
class SparseGradientCheck {
 public:
  explicit SparseGradientCheck(uint64_t seed) : rng_(seed) {}

  Graph& graph() { return graph_; }
  std::mt19937_64* rng() { return &rng_; }

  Output Table(const std::string& name, int32_t dim) { return graph_.SparseTable(cairn::Table(name, dim)); }
  // An int64 placeholder fed `value` in every Run of the check.
  Output Ids(const std::string& name, Tensor value) {
    Output p = graph_.Placeholder(name, DType::kInt64, value.shape());
    feeds_[p] = std::move(value);
    return p;
  }
  // A trainable float32 variable that holds `value` when the check runs.
  Output Input(const std::string& name, Tensor value) {
    VariableOptions o;
    o.name = name;
    o.shape = value.shape();
    Output v = graph_.Variable(o);
    Output feed = graph_.Placeholder(name + "/value", DType::kFloat32, value.shape());
    inputs_.push_back({name, feed, graph_.Assign(v, feed, name + "/assign"), value.Clone()});
    return v;
  }

  void Finish(Output y) {
    const Shape& shape = graph_.node(y).shape;
    for (int64_t d : shape) ASSERT_GE(d, 0) << "the checked output needs a known shape";
    Output weights = graph_.Constant("check/R", RandomTensor(&rng_, shape));
    loss_ = graph_.ReduceSum(graph_.Mul(y, weights), "check/loss");
    train_ = graph_.Minimize(loss_, {}, "check/train");
    session_ = NewSession(graph_, &store_);
    ASSERT_NE(session_, nullptr);
    for (const DenseInput& in : inputs_) ASSERT_NO_FATAL_FAILURE(Set(in, in.value));
  }

  SparseCapturingStore& store() { return store_; }
  Session& session() { return *session_; }
  const FeedMap& feeds() const { return feeds_; }

  // `touched`: table -> the ids whose rows the loss reads, sorted: exactly
  // what the push must carry (in any order).
  void ExpectGradientsMatchFiniteDifferences(const std::map<std::string, std::vector<int64_t>>& touched) {
    StatusOr<Tensor> step = session_->Run(train_, feeds_);
    ASSERT_TRUE(step.ok()) << step.status();
    const PushBatch pushed = store_.last;
    ASSERT_TRUE(pushed.train_step);
    ASSERT_EQ(pushed.sparse_gradients.size(), touched.size());
    for (const auto& [table, ids] : touched) {
      auto it = pushed.sparse_gradients.find(table);
      ASSERT_NE(it, pushed.sparse_gradients.end()) << "no rows were pushed for '" << table << "'";
      EXPECT_EQ(pushed.gradients.count(table), 0u) << "a dense gradient was pushed for table '" << table << "'";
      std::vector<int64_t> pushed_ids = IdList(it->second.ids);
      std::map<int64_t, size_t> row_of;
      for (size_t r = 0; r < pushed_ids.size(); ++r) row_of[pushed_ids[r]] = r;
      std::sort(pushed_ids.begin(), pushed_ids.end());
      ASSERT_EQ(pushed_ids, ids) << table;
      const int64_t dim = it->second.values.dim(1);
      ASSERT_EQ(it->second.values.shape(), (Shape{static_cast<int64_t>(ids.size()), dim}));
      for (size_t r = 0; r < ids.size(); ++r) {
        for (int64_t j = 0; j < dim; ++j) {
          const double numeric = RowDifference(table, ids[r], j);
          const double got = it->second.values.data<float>()[row_of.at(ids[r]) * dim + j];
          EXPECT_NEAR(got, numeric, kAbsTol + kRelTol * std::fabs(numeric))
              << "d(loss)/d(" << table << "[" << ids[r] << "][" << j << "])";
        }
      }
    }
    ASSERT_EQ(pushed.gradients.size(), inputs_.size());
    for (const DenseInput& in : inputs_) {
      const Tensor& g = pushed.gradients.at(in.name);
      Tensor probe = in.value.Clone();
      for (int64_t i = 0; i < probe.num_elements(); ++i) {
        const float x = in.value.data<float>()[i];
        const float plus = static_cast<float>(x + kEps), minus = static_cast<float>(x - kEps);
        probe.data<float>()[i] = plus;
        Set(in, probe);
        const double loss_plus = Loss();
        probe.data<float>()[i] = minus;
        Set(in, probe);
        const double loss_minus = Loss();
        probe.data<float>()[i] = x;
        const double numeric = (loss_plus - loss_minus) / (static_cast<double>(plus) - static_cast<double>(minus));
        EXPECT_NEAR(g.data<float>()[i], numeric, kAbsTol + kRelTol * std::fabs(numeric))
            << "d(loss)/d(" << in.name << "[" << i << "])";
      }
      ASSERT_NO_FATAL_FAILURE(Set(in, in.value));
    }
  }

 private:
  struct DenseInput {
    std::string name;
    Output feed, assign;
    Tensor value;
  };

  void Set(const DenseInput& in, const Tensor& value) {
    StatusOr<Tensor> r = session_->Run(in.assign, {{in.feed, value}});
    ASSERT_TRUE(r.ok()) << r.status();
  }

  double Loss() {
    StatusOr<Tensor> l = session_->Run(loss_, feeds_);
    EXPECT_TRUE(l.ok()) << l.status();
    return l.ok() ? static_cast<double>(l->data<float>()[0]) : NAN;
  }

  // The central difference of the loss in element j of row `id`.
  double RowDifference(const std::string& table, int64_t id, int64_t j) {
    const std::vector<float> row = store_.Row(table, id);
    std::vector<float> probe = row;
    const float plus = static_cast<float>(row[j] + kEps), minus = static_cast<float>(row[j] - kEps);
    probe[j] = plus;
    store_.SetRow(table, id, probe);
    const double loss_plus = Loss();
    probe[j] = minus;
    store_.SetRow(table, id, probe);
    const double loss_minus = Loss();
    store_.SetRow(table, id, row);
    return (loss_plus - loss_minus) / (static_cast<double>(plus) - static_cast<double>(minus));
  }

  std::mt19937_64 rng_;
  Graph graph_;
  SparseCapturingStore store_;
  std::unique_ptr<Session> session_;
  std::vector<DenseInput> inputs_;
  FeedMap feeds_;
  Output loss_, train_;
};

// --- Gradients -------------------------------------------------------------------

TEST(EmbeddingGradient, LookupOfABatchMatchesFiniteDifferences) {
  SparseGradientCheck check(1);
  Output table = check.Table("emb", 3);
  Output ids = check.Ids("ids", Ids({5}, {7, 2, 7, 40, 2}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Tanh(check.graph().EmbeddingLookup(table, ids))));
  check.ExpectGradientsMatchFiniteDifferences({{"emb", {2, 7, 40}}});
}

TEST(EmbeddingGradient, LookupOfAMatrixOfIdsMatchesFiniteDifferences) {
  SparseGradientCheck check(2);
  Output table = check.Table("emb", 2);
  Output ids = check.Ids("ids", Ids({2, 3}, {1, 4, 1, 9, 4, 0}));
  Output e = check.graph().EmbeddingLookup(table, ids);
  ASSERT_EQ(check.graph().node(e).shape, (Shape{2, 3, 2}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(check.graph().Square(e)));
  check.ExpectGradientsMatchFiniteDifferences({{"emb", {0, 1, 4, 9}}});
}

TEST(EmbeddingGradient, SumBagWithMissingIdsMatchesFiniteDifferences) {
  SparseGradientCheck check(3);
  Output table = check.Table("emb", 2);
  // Row 2 is all missing; -1 and other negative ids are skipped.
  Output ids = check.Ids("ids", Ids({3, 3}, {5, -1, 5, 8, 3, -7, -1, -1, -1}));
  ASSERT_NO_FATAL_FAILURE(
      check.Finish(check.graph().Sigmoid(check.graph().EmbeddingBag(table, ids, Combiner::kSum))));
  check.ExpectGradientsMatchFiniteDifferences({{"emb", {3, 5, 8}}});
}

TEST(EmbeddingGradient, MeanBagWithMissingIdsMatchesFiniteDifferences) {
  SparseGradientCheck check(4);
  Output table = check.Table("emb", 3);
  Output ids = check.Ids("ids", Ids({3, 4}, {5, -1, 5, 8, 3, 1, -1, -1, -1, -1, -1, 6}));
  ASSERT_NO_FATAL_FAILURE(
      check.Finish(check.graph().Tanh(check.graph().EmbeddingBag(table, ids, Combiner::kMean))));
  check.ExpectGradientsMatchFiniteDifferences({{"emb", {1, 3, 5, 6, 8}}});
}

TEST(EmbeddingGradient, ConcatOfTwoTablesAndDenseFeaturesIntoAnMlpMatchesFiniteDifferences) {
  SparseGradientCheck check(5);
  Graph& g = check.graph();
  Output user = check.Table("emb/user", 3);
  Output item = check.Table("emb/item", 2);
  Output user_ids = check.Ids("user_ids", Ids({4}, {11, 12, 11, 13}));
  Output item_ids = check.Ids("item_ids", Ids({4, 2}, {1, -1, 2, 1, -1, -1, 3, 3}));
  Output dense = check.Input("dense", RandomTensor(check.rng(), {4, 2}));
  Output w = check.Input("W", RandomTensor(check.rng(), {7, 3}));
  Output joined = g.Concat({g.EmbeddingLookup(user, user_ids), dense, g.EmbeddingBag(item, item_ids, Combiner::kMean)});
  ASSERT_EQ(g.node(joined).shape, (Shape{4, 7}));
  ASSERT_NO_FATAL_FAILURE(check.Finish(g.Tanh(g.MatMul(joined, w))));
  check.ExpectGradientsMatchFiniteDifferences({{"emb/user", {11, 12, 13}}, {"emb/item", {1, 2, 3}}});
}

TEST(EmbeddingGradient, TwoLookupsOfOneTableShareOnePushedUpdate) {
  SparseGradientCheck check(6);
  Graph& g = check.graph();
  Output table = check.Table("emb", 2);
  Output a = g.EmbeddingLookup(table, check.Ids("a", Ids({3}, {4, 5, 4})));
  Output b = g.EmbeddingBag(table, check.Ids("b", Ids({3, 2}, {5, 6, -1, 4, 6, 6})), Combiner::kSum);
  ASSERT_NO_FATAL_FAILURE(check.Finish(g.Mul(a, g.Sigmoid(b))));
  check.ExpectGradientsMatchFiniteDifferences({{"emb", {4, 5, 6}}});
}

// --- What is pushed --------------------------------------------------------------

TEST(EmbeddingPush, RepeatedIdsArePushedOnceWithTheirGradientsSummed) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  Output ids = g.Placeholder("ids", DType::kInt64, {4});
  Output weights = g.Constant("R", Tensor::FromVector({4, 2}, {0.5f, 1, 2, 3, 0.25f, 4, 8, 0.125f}));
  Output train = g.Minimize(g.ReduceSum(g.Mul(g.EmbeddingLookup(table, ids), weights)));
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Run(train, {{ids, Ids({4}, {9, 3, 9, 9})}}).ok());
  ASSERT_EQ(store.last.sparse_gradients.count("emb"), 1u);
  const SparseRowsUpdate& u = store.last.sparse_gradients.at("emb");
  EXPECT_EQ(IdList(u.ids), (std::vector<int64_t>{9, 3}));  // in the order first read
  // Summed in the order the ids appear.
  EXPECT_EQ(Floats(u.values), (std::vector<float>{0.5f + 0.25f + 8, 1 + 4 + 0.125f, 2, 3}));
  EXPECT_TRUE(store.last.gradients.empty());
}

TEST(EmbeddingPush, TheSameStepTwiceGivesBitIdenticalUpdates) {
  SparseGradientCheck check(7);
  Graph& g = check.graph();
  Output table = check.Table("emb", 4);
  std::vector<int64_t> many;
  for (int i = 0; i < 64; ++i) many.push_back((i * 37) % 11);
  Output a = g.EmbeddingBag(table, check.Ids("a", Ids({16, 4}, many)), Combiner::kMean);
  Output b = g.EmbeddingLookup(table, check.Ids("b", Ids({16}, std::vector<int64_t>(many.begin(), many.begin() + 16))));
  ASSERT_NO_FATAL_FAILURE(check.Finish(g.Tanh(g.Add(a, b))));
  Output train = *g.Find("check/train");
  ASSERT_TRUE(check.session().Run(train, check.feeds()).ok());
  const SparseRowsUpdate first = check.store().last.sparse_gradients.at("emb");
  ASSERT_TRUE(check.session().Run(train, check.feeds()).ok());
  const SparseRowsUpdate& second = check.store().last.sparse_gradients.at("emb");
  EXPECT_TRUE(first.ids.BitEqual(second.ids));
  EXPECT_TRUE(first.values.BitEqual(second.values));
}

TEST(EmbeddingPush, ABatchOfMissingIdsPushesNoRowsButStillTrains) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 1));
  Output ids = g.Placeholder("ids", DType::kInt64, {2, 2});
  Output train = g.Minimize(g.ReduceSum(g.EmbeddingBag(table, ids, Combiner::kMean)));
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Run(train, {{ids, Ids({2, 2}, {-1, -1, -1, -1})}}).ok());
  EXPECT_TRUE(store.sparse_pulls.empty()) << "nothing to pull";
  EXPECT_TRUE(store.last.sparse_gradients.empty());
  EXPECT_TRUE(store.last.train_step);
}

TEST(EmbeddingPush, NonTrainableTablesAndTablesOutsideTheVarListGetNoRows) {
  Graph g;
  SparseTableOptions frozen = Table("frozen", 2);
  frozen.trainable = false;
  Output f = g.SparseTable(frozen);
  Output t = g.SparseTable(Table("emb", 2));
  Output other = g.SparseTable(Table("other", 2));
  Output ids = g.Placeholder("ids", DType::kInt64, {2});
  Output loss = g.ReduceSum(g.Add(g.Add(g.EmbeddingLookup(f, ids), g.EmbeddingLookup(t, ids)),
                                  g.EmbeddingLookup(other, ids)));
  Output all = g.Minimize(loss, {}, "all");
  MinimizeOptions only;
  only.var_list = {other};
  Output narrowed = g.Minimize(loss, only, "narrowed");
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Run(all, {{ids, Ids({2}, {1, 2})}}).ok());
  EXPECT_EQ(store.last.sparse_gradients.size(), 2u);
  EXPECT_EQ(store.last.sparse_gradients.count("frozen"), 0u);
  ASSERT_TRUE(session->Run(narrowed, {{ids, Ids({2}, {1, 2})}}).ok());
  ASSERT_EQ(store.last.sparse_gradients.size(), 1u);
  EXPECT_EQ(IdList(store.last.sparse_gradients.at("other").ids), (std::vector<int64_t>{1, 2}));
}

TEST(EmbeddingPush, LocalVariablesInTheSameRunStayInTheSession) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 1));
  Output ids = g.Placeholder("ids", DType::kInt64, {2});
  VariableOptions counter;
  counter.name = "examples_seen";
  counter.shape = {};
  counter.local = true;
  Output seen = g.Variable(counter);
  Output count = g.AssignAdd(seen, g.Constant("two", Tensor::FromVector({}, {2})));
  Output train = g.Minimize(g.ReduceSum(g.EmbeddingLookup(table, ids)));
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Run({train, count}, {{ids, Ids({2}, {1, 1})}}).ok());
  ASSERT_TRUE(session->Run({train, count}, {{ids, Ids({2}, {1, 1})}}).ok());
  EXPECT_EQ(Floats(*session->Run(seen)), (std::vector<float>{4}));
  EXPECT_TRUE(store.last.assigns.empty());
  EXPECT_TRUE(store.last.gradients.empty());
  EXPECT_EQ(Floats(store.last.sparse_gradients.at("emb").values), (std::vector<float>{2}));
}

// --- What is pulled ----------------------------------------------------------------

TEST(EmbeddingPull, ARunPullsEveryTablesUniqueIdsInOneRequestInTheOrderFirstRead) {
  Graph g;
  Output user = g.SparseTable(Table("emb/user", 2));
  Output item = g.SparseTable(Table("emb/item", 3));
  Output a = g.EmbeddingLookup(user, g.Placeholder("a", DType::kInt64, {3}), "a_rows");
  Output b = g.EmbeddingBag(item, g.Placeholder("b", DType::kInt64, {2, 2}), Combiner::kSum, "b_rows");
  // A placeholder created after the first lookup: its ids still join the one pull.
  Output c = g.EmbeddingLookup(user, g.Placeholder("c", DType::kInt64, {2}), "c_rows");
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  StatusOr<std::vector<Tensor>> r = session->Run(
      {a, b, c}, {{*g.Find("a"), Ids({3}, {30, 10, 30})},
                  {*g.Find("b"), Ids({2, 2}, {7, -1, 5, 7})},
                  {*g.Find("c"), Ids({2}, {20, 10})}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(store.sparse_pulls.size(), 1u);
  EXPECT_EQ(store.sparse_pulls[0].at("emb/user"), (std::vector<int64_t>{30, 10, 20}));
  EXPECT_EQ(store.sparse_pulls[0].at("emb/item"), (std::vector<int64_t>{7, 5}));
  // Each lookup gathers its own ids' rows.
  const std::vector<float> r30 = store.Row("emb/user", 30), r10 = store.Row("emb/user", 10);
  EXPECT_EQ(Floats((*r)[0]), (std::vector<float>{r30[0], r30[1], r10[0], r10[1], r30[0], r30[1]}));
  const std::vector<float> r5 = store.Row("emb/item", 5), r7 = store.Row("emb/item", 7);
  EXPECT_EQ(Floats((*r)[1]), (std::vector<float>{r7[0], r7[1], r7[2], r5[0] + r7[0], r5[1] + r7[1], r5[2] + r7[2]}));
  EXPECT_EQ((*r)[2].shape(), (Shape{2, 2}));
}

TEST(EmbeddingPull, ARunWithoutLookupsPullsNoRows) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  g.EmbeddingLookup(table, g.Placeholder("ids", DType::kInt64, {-1}));
  Output c = g.Constant("c", Tensor::FromVector({1}, {1}));
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Run(c).ok());
  EXPECT_TRUE(store.sparse_pulls.empty());
}

TEST(EmbeddingPull, ReadRowsKeepsEachIdOnceInTheOrderFirstReadAndFindsItsRow) {
  std::mt19937_64 rng(5);
  for (size_t n : {size_t{0}, size_t{7}, size_t{300}, size_t{20000}}) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t r = rng();
      // Wide ids of both signs, small ones, and repeats of earlier ones.
      ids.push_back(i % 3 == 0 ? static_cast<int64_t>(r) : i % 3 == 1 ? static_cast<int64_t>(r % 1000) - 500
                                                                       : ids[r % ids.size()]);
    }
    std::vector<int64_t> want;
    std::set<int64_t> seen;
    for (int64_t id : ids) {
      if (seen.insert(id).second) want.push_back(id);
    }
    const TableRows t = ReadRows(ids, 4);
    ASSERT_EQ(t.ids.num_elements(), static_cast<int64_t>(want.size())) << n;
    EXPECT_TRUE(std::equal(want.begin(), want.end(), t.ids.data<int64_t>())) << n;
    EXPECT_EQ(t.rows.shape(), (Shape{0, 4}));
    for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(t.index->Find(want[i]), static_cast<int64_t>(i));
    int64_t absent = 501;
    while (seen.count(absent)) ++absent;
    EXPECT_EQ(t.index->Find(absent), -1);
  }
}

TEST(EmbeddingForward, ABagPoolsItsPresentRowsAndAnEmptyBagIsZero) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  Output ids = g.Placeholder("ids", DType::kInt64, {3, 3});
  Output sum = g.EmbeddingBag(table, ids, Combiner::kSum);
  Output mean = g.EmbeddingBag(table, ids, Combiner::kMean);
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  store.SetRow("emb", 1, {1, 2});
  store.SetRow("emb", 4, {10, 20});
  StatusOr<std::vector<Tensor>> r = session->Run({sum, mean}, {{ids, Ids({3, 3}, {1, 4, 4, -1, -1, -1, -1, 4, -1})}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Floats((*r)[0]), (std::vector<float>{21, 42, 0, 0, 10, 20}));
  EXPECT_EQ(Floats((*r)[1]), (std::vector<float>{7, 14, 0, 0, 10, 20}));
}

// --- Errors and declarations ------------------------------------------------------

TEST(EmbeddingErrors, ANegativeIdInALookupIsInvalidArgumentNamingTheNode) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  Output ids = g.Placeholder("ids", DType::kInt64, {2});
  Output rows = g.EmbeddingLookup(table, ids, "user_rows");
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  StatusOr<Tensor> r = session->Run(rows, {{ids, Ids({2}, {3, -1})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'user_rows'"), std::string::npos) << r.status();
  EXPECT_TRUE(store.sparse_pulls.empty());
}

TEST(EmbeddingErrors, FetchingATableIsInvalidArgumentNamingIt) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  StatusOr<Tensor> r = session->Run(table);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'emb'"), std::string::npos) << r.status();
}

TEST(EmbeddingErrors, ALookupBeforeInitializeIsFailedPreconditionNamingTheTable) {
  Graph g;
  Output table = g.SparseTable(Table("emb", 2));
  Output ids = g.Placeholder("ids", DType::kInt64, {1});
  Output rows = g.EmbeddingLookup(table, ids);
  SparseCapturingStore store;
  StatusOr<std::unique_ptr<Session>> s = Session::Create(&g, &store);
  ASSERT_TRUE(s.ok());
  StatusOr<Tensor> r = (*s)->Run(rows, {{ids, Ids({1}, {0})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("'emb'"), std::string::npos) << r.status();
}

TEST(EmbeddingDeclarations, InitializeDeclaresTheTablesWithTheSessionsOptimizer) {
  Graph g;
  g.SparseTable(Table("emb/user", 4));
  g.SparseTable(Table("emb/item", 2, /*seed=*/9));
  SparseCapturingStore store;
  auto session = NewSession(g, &store);
  EXPECT_EQ(store.created, g.SparseTables());
  EXPECT_EQ(store.optimizer_kind, "adagrad");
}

// A store without sparse tables (VariableStore's defaults): only a graph
// that has tables needs them.
class DenseOnlyStore : public VariableStore {
 public:
  Status Create(const std::vector<VariableSpec>&, const OptimizerSpec&, const TrainingMode&) override {
    return Status::OK();
  }
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>&) override {
    return std::map<std::string, Tensor>{};
  }
  Status Push(const PushBatch&) override { return Status::OK(); }
};

TEST(EmbeddingDeclarations, AGraphWithoutTablesNeverAsksForThem) {
  Graph dense;
  dense.Constant("c", Tensor::FromVector({1}, {1}));
  DenseOnlyStore store;
  StatusOr<std::unique_ptr<Session>> s = Session::Create(&dense, &store);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->Initialize().ok());

  Graph sparse;
  sparse.SparseTable(Table("emb", 2));
  StatusOr<std::unique_ptr<Session>> t = Session::Create(&sparse, &store);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->Initialize().code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace cairn
