// Session (worker/session.h) over an InProcessStore: the servers' ShardStore
// and optimizers in this process, so that what a Run pushes is applied as a
// server would apply it.
#include "worker/session.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/in_process_store.h"
#include "ps/local_cluster.h"
#include "worker/graph.h"
#include "worker/ps_client.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

// An InProcessStore that records every variable name it is asked to create,
// pull or push, and the last batch pushed.
class RecordingStore : public VariableStore {
 public:
  Status Create(const std::vector<VariableSpec>& specs, const OptimizerSpec& optimizer,
                const TrainingMode& mode) override {
    for (const VariableSpec& s : specs) created.insert(s.name);
    return inner.Create(specs, optimizer, mode);
  }
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names) override {
    pulled.insert(names.begin(), names.end());
    return inner.Pull(names);
  }
  Status Push(const PushBatch& batch) override {
    ++pushes;
    last = batch;
    for (const auto& [name, t] : batch.gradients) { pushed.insert(name); gradients.insert(name); }
    for (const auto& [name, t] : batch.assigns) { pushed.insert(name); assigns.insert(name); }
    for (const auto& [name, t] : batch.assign_adds) { pushed.insert(name); assign_adds.insert(name); }
    if (!batch.global_step.empty()) pushed.insert(batch.global_step);
    return inner.Push(batch);
  }

  // Every name this store has seen, in any role.
  bool Saw(const std::string& name) const {
    return created.count(name) || pulled.count(name) || pushed.count(name);
  }
  // The store's own value, bypassing any Session.
  Tensor Value(const std::string& name) {
    StatusOr<std::map<std::string, Tensor>> r = inner.Pull({name});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->at(name) : Tensor();
  }

  InProcessStore inner;
  std::set<std::string> created, pulled, pushed, gradients, assigns, assign_adds;
  int pushes = 0;
  PushBatch last;
};

VariableOptions Var(const std::string& name, Shape shape, bool trainable = true) {
  VariableOptions o;
  o.name = name;
  o.shape = std::move(shape);
  o.trainable = trainable;
  return o;
}

VariableOptions ConstantVar(const std::string& name, Shape shape, double value, bool trainable = true) {
  VariableOptions o = Var(name, std::move(shape), trainable);
  o.init.kind = InitKind::kConstant;
  o.init.value = value;
  return o;
}

VariableOptions Int64Var(const std::string& name, Shape shape) {
  VariableOptions o = Var(name, std::move(shape), /*trainable=*/false);
  o.dtype = DType::kInt64;
  return o;
}

Tensor Int64Scalar(int64_t v) {
  Tensor t(DType::kInt64, {});
  t.data<int64_t>()[0] = v;
  return t;
}

std::unique_ptr<Session> NewSession(const Graph& g, VariableStore* store, SessionOptions options = {}) {
  EXPECT_TRUE(g.status().ok()) << g.status();
  StatusOr<std::unique_ptr<Session>> s = Session::Create(&g, store, options);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

SessionOptions Sgd(double lr) {
  SessionOptions o;
  o.optimizer.kind = "sgd";
  o.optimizer.learning_rate = lr;
  return o;
}

std::vector<float> Floats(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.num_elements()}; }

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void ExpectErrorNaming(const Status& s, StatusCode code, const std::string& name) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_TRUE(Contains(s.message(), "'" + name + "'")) << s;
}

// --- Feeds and fetches -------------------------------------------------------

// x [-1, 3] · w [3, 2], with w initialized to ones.
struct FeedGraph {
  FeedGraph() {
    x = g.Placeholder("x", DType::kFloat32, {-1, 3});
    VariableOptions o = Var("w", {3, 2});
    o.init.kind = InitKind::kOnes;
    w = g.Variable(o);
    y = g.MatMul(x, w, "y");
    c = g.Constant("c", Tensor::FromVector({2}, {1, 2}));
  }
  Graph g;
  Output x, w, y, c;
};

TEST(SessionFeeds, AFedPlaceholderFlowsThroughTheGraph) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> y = session->Run(f.y, {{f.x, Tensor::FromVector({2, 3}, {1, 2, 3, 4, 5, 6})}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{2, 2}));
  EXPECT_EQ(Floats(*y), (std::vector<float>{6, 6, 15, 15}));
  // An unknown dimension takes any size.
  y = session->Run(f.y, {{f.x, Tensor(DType::kFloat32, {7, 3})}});
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(y->shape(), (Shape{7, 2}));
}

TEST(SessionFeeds, AnUnfedPlaceholderIsInvalidArgumentNamingIt) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> y = session->Run(f.y);
  ASSERT_FALSE(y.ok());
  ExpectErrorNaming(y.status(), StatusCode::kInvalidArgument, "x");
  EXPECT_TRUE(Contains(y.status().message(), "fed")) << y.status();
}

TEST(SessionFeeds, APlaceholderTheFetchesDoNotNeedNeedsNoFeed) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> c = session->Run(f.c);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(Floats(*c), (std::vector<float>{1, 2}));
}

TEST(SessionFeeds, AFeedOfTheWrongDtypeNamesThePlaceholder) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> y = session->Run(f.y, {{f.x, Tensor(DType::kInt64, {2, 3})}});
  ASSERT_FALSE(y.ok());
  ExpectErrorNaming(y.status(), StatusCode::kInvalidArgument, "x");
  EXPECT_TRUE(Contains(y.status().message(), "int64")) << y.status();
  EXPECT_TRUE(Contains(y.status().message(), "float32")) << y.status();
}

TEST(SessionFeeds, AFeedOfTheWrongRankNamesThePlaceholder) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  for (Shape bad : {Shape{3}, Shape{1, 1, 3}, Shape{}}) {
    StatusOr<Tensor> y = session->Run(f.y, {{f.x, Tensor(DType::kFloat32, bad)}});
    ASSERT_FALSE(y.ok()) << ShapeString(bad);
    ExpectErrorNaming(y.status(), StatusCode::kInvalidArgument, "x");
    EXPECT_TRUE(Contains(y.status().message(), ShapeString(bad))) << y.status();
  }
}

TEST(SessionFeeds, AFeedContradictingAKnownDimensionNamesThePlaceholder) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> y = session->Run(f.y, {{f.x, Tensor(DType::kFloat32, {2, 4})}});
  ASSERT_FALSE(y.ok());
  ExpectErrorNaming(y.status(), StatusCode::kInvalidArgument, "x");
  EXPECT_TRUE(Contains(y.status().message(), "[2, 4]")) << y.status();
  EXPECT_TRUE(Contains(y.status().message(), "[-1, 3]")) << y.status();
}

TEST(SessionFeeds, FeedingANonPlaceholderNamesTheNode) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> r = session->Run(f.c, {{f.w, Tensor(DType::kFloat32, {3, 2})}});
  ASSERT_FALSE(r.ok());
  ExpectErrorNaming(r.status(), StatusCode::kInvalidArgument, "w");
  EXPECT_TRUE(Contains(r.status().message(), "placeholder")) << r.status();

  r = session->Run(f.w, {{f.c, Tensor(DType::kFloat32, {2})}});
  ASSERT_FALSE(r.ok());
  ExpectErrorNaming(r.status(), StatusCode::kInvalidArgument, "c");

  r = session->Run(f.c, {{f.x, Tensor(DType::kFloat32, {1, 3})}, {f.y, Tensor(DType::kFloat32, {1, 2})}});
  ASSERT_FALSE(r.ok());
  ExpectErrorNaming(r.status(), StatusCode::kInvalidArgument, "y");
}

TEST(SessionFeeds, AFeedOfANodeNotInTheGraphIsInvalidArgument) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  StatusOr<Tensor> r = session->Run(f.c, {{Output{f.g.num_nodes() + 5}, Tensor(DType::kFloat32, {1})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
}

TEST(SessionFetches, AFetchNotInTheGraphIsInvalidArgument) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  for (Output bad : {Output{f.g.num_nodes()}, Output{1000}, Output{}}) {
    StatusOr<std::vector<Tensor>> r = session->Run(std::vector<Output>{f.c, bad});
    ASSERT_FALSE(r.ok()) << bad.node;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status();
    EXPECT_TRUE(Contains(r.status().message(), "not in the graph")) << r.status();
  }
}

TEST(SessionFetches, RunningBeforeInitializeIsFailedPreconditionNamingTheVariable) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  EXPECT_FALSE(session->initialized());
  StatusOr<Tensor> r = session->Run(f.y, {{f.x, Tensor(DType::kFloat32, {1, 3})}});
  ASSERT_FALSE(r.ok());
  ExpectErrorNaming(r.status(), StatusCode::kFailedPrecondition, "w");
  EXPECT_TRUE(Contains(r.status().message(), "never initialized")) << r.status();
  // A fetch that needs no variable runs.
  EXPECT_TRUE(session->Run(f.c).ok());
  ASSERT_TRUE(session->Initialize().ok());
  EXPECT_TRUE(session->initialized());
  EXPECT_TRUE(session->Run(f.y, {{f.x, Tensor(DType::kFloat32, {1, 3})}}).ok());
}

TEST(SessionFetches, SeveralFetchesComeBackInTheirOrder) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<std::vector<Tensor>> r =
      session->Run({f.c, f.y, f.c, f.x}, {{f.x, Tensor::FromVector({1, 3}, {1, 1, 2})}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ(Floats((*r)[0]), (std::vector<float>{1, 2}));
  EXPECT_EQ(Floats((*r)[1]), (std::vector<float>{4, 4}));
  EXPECT_EQ(Floats((*r)[2]), (std::vector<float>{1, 2}));
  EXPECT_EQ(Floats((*r)[3]), (std::vector<float>{1, 1, 2}));
}

TEST(SessionFetches, VariablesArePulledOncePerRun) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  const int64_t before = store.pulls();
  ASSERT_TRUE(session->Run({f.y, f.w}, {{f.x, Tensor(DType::kFloat32, {1, 3})}}).ok());
  EXPECT_EQ(store.pulls(), before + 1);
  ASSERT_TRUE(session->Run(f.c).ok());
  EXPECT_EQ(store.pulls(), before + 1);  // no variable needed: no pull
}

// A Session keeps what it works out from a Run's fetches, its per-node
// values and its push batch's nodes for the next Run (a warm step then
// allocates nothing). Runs whose fetches change from one to the next
// (train, evaluate, assign, train again) give what a new Session gives for
// each, and a value fetched earlier is not overwritten by later Runs.
TEST(SessionFetches, RunsOfChangingFetchesMatchANewSessionForEachAndKeepEarlierOutputs) {
  struct Model {
    Model() {
      x = g.Placeholder("x", DType::kFloat32, {-1, 3});
      w = g.Variable(Var("weights_of_a_long_name_beyond_sso", {3, 2}));
      count = g.Variable(Int64Var("count", {}));
      y = g.MatMul(x, w, "y");
      loss = g.ReduceMean(g.Square(y), "loss");
      train = g.Minimize(loss, {}, "train");
      tick = g.AssignAdd(count, g.Constant("one", Int64Scalar(1)), "tick");
      reset = g.Assign(count, g.Constant("zero", Int64Scalar(0)), "reset");
    }
    Graph g;
    Output x, w, count, y, loss, train, tick, reset;
  } m;
  const FeedMap feeds{{m.x, Tensor::FromVector({2, 3}, {1, 2, 3, -1, 0.5f, 2})}};
  const std::vector<std::vector<Output>> schedule = {
      {m.loss, m.train, m.tick}, {m.y}, {m.loss, m.train, m.tick}, {m.tick, m.tick}, {m.reset, m.tick},
      {m.loss, m.train},         {m.w}, {m.loss, m.train, m.tick}, {m.count, m.y}};
  InProcessStore kept_store, fresh_store;
  auto kept = NewSession(m.g, &kept_store, Sgd(0.1));
  ASSERT_TRUE(kept->Initialize().ok());
  std::vector<Tensor> outputs;  // reused by every Run, as a training loop does
  std::vector<std::pair<Tensor, Tensor>> earlier;  // (a fetched value, a copy of it then)
  for (size_t step = 0; step < 3 * schedule.size(); ++step) {
    const std::vector<Output>& fetches = schedule[step % schedule.size()];
    ASSERT_TRUE(kept->Run(fetches, feeds, &outputs).ok()) << step;
    std::unique_ptr<Session> once = NewSession(m.g, &fresh_store, Sgd(0.1));
    ASSERT_TRUE(once->Initialize().ok());  // keeps the store's values
    StatusOr<std::vector<Tensor>> fresh = once->Run(fetches, feeds);
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    ASSERT_EQ(outputs.size(), fresh->size());
    for (size_t i = 0; i < outputs.size(); ++i) {
      EXPECT_TRUE(outputs[i].BitEqual((*fresh)[i])) << "step " << step << ", fetch " << i;
      if (outputs[i].num_elements() > 0) earlier.emplace_back(outputs[i], outputs[i].Clone());
    }
  }
  for (const std::string name : {"weights_of_a_long_name_beyond_sso", "count"}) {
    StatusOr<std::map<std::string, Tensor>> a = kept_store.Pull({name}), b = fresh_store.Pull({name});
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(a->at(name).BitEqual(b->at(name))) << name;
  }
  for (const auto& [value, copy] : earlier) EXPECT_TRUE(value.BitEqual(copy));
}

// The graph is shared read-only by every Session: what a caller does with a
// fetched value must not change the graph's constant for later Runs.
TEST(SessionFetches, WritingToAFetchedConstantDoesNotChangeTheGraph) {
  FeedGraph f;
  InProcessStore store;
  auto session = NewSession(f.g, &store);
  StatusOr<Tensor> c = session->Run(f.c);
  ASSERT_TRUE(c.ok());
  c->data<float>()[0] = 99;
  EXPECT_EQ(Floats(*session->Run(f.c)), (std::vector<float>{1, 2}));
  EXPECT_EQ(Floats(f.g.node(f.c).value), (std::vector<float>{1, 2}));
}

// --- Collections -------------------------------------------------------------

struct CollectionGraph {
  CollectionGraph() {
    VariableOptions w = Var("w", {2});
    w.collections = {"weights"};
    g.Variable(w);
    g.Variable(Var("mean", {2}, /*trainable=*/false));
    VariableOptions local = Var("local_total", {});
    local.local = true;
    g.Variable(local);
    loss = g.ReduceSum(g.Find("w").value(), "loss");
  }
  Graph g;
  Output loss;
};

TEST(SessionCollections, StartFromTheGraphsDeclaredCollections) {
  CollectionGraph cg;
  InProcessStore store;
  auto session = NewSession(cg.g, &store);
  using Names = std::vector<std::string>;
  EXPECT_EQ(session->GetCollection(collections::kGlobalVariables), (Names{"w", "mean"}));
  EXPECT_EQ(session->GetCollection(collections::kTrainableVariables), (Names{"w"}));
  EXPECT_EQ(session->GetCollection(collections::kLocalVariables), (Names{"local_total"}));
  EXPECT_EQ(session->GetCollection("weights"), (Names{"w"}));
  EXPECT_TRUE(session->GetCollection("no_such_collection").empty());
  const Names names = session->CollectionNames();
  for (const char* c : {collections::kGlobalVariables, collections::kTrainableVariables,
                        collections::kLocalVariables, "weights"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), c), names.end()) << c;
  }
}

TEST(SessionCollections, GetCollectionReturnsACopy) {
  CollectionGraph cg;
  InProcessStore store;
  auto session = NewSession(cg.g, &store);
  std::vector<std::string> copy = session->GetCollection(collections::kGlobalVariables);
  copy.push_back("intruder");
  copy.erase(copy.begin());
  EXPECT_EQ(session->GetCollection(collections::kGlobalVariables), (std::vector<std::string>{"w", "mean"}));
}

TEST(SessionCollections, GetCollectionRefIsALiveReference) {
  CollectionGraph cg;
  InProcessStore store;
  auto session = NewSession(cg.g, &store);
  std::vector<std::string>& ref = session->GetCollectionRef(collections::kGlobalVariables);
  ref.push_back("extra");
  EXPECT_EQ(session->GetCollection(collections::kGlobalVariables),
            (std::vector<std::string>{"w", "mean", "extra"}));
  ref.clear();
  EXPECT_TRUE(session->GetCollection(collections::kGlobalVariables).empty());
  // A reference to a new collection creates it; later additions show through it.
  std::vector<std::string>& fresh = session->GetCollectionRef("fresh");
  EXPECT_TRUE(fresh.empty());
  session->AddToCollection("fresh", cg.loss);
  EXPECT_EQ(fresh, (std::vector<std::string>{"loss"}));
}

TEST(SessionCollections, AddToCollectionAppendsTheNodesName) {
  CollectionGraph cg;
  InProcessStore store;
  auto session = NewSession(cg.g, &store);
  session->AddToCollection(collections::kLosses, cg.loss);
  session->AddToCollection("weights", cg.g.Find("mean").value());
  EXPECT_EQ(session->GetCollection(collections::kLosses), (std::vector<std::string>{"loss"}));
  EXPECT_EQ(session->GetCollection("weights"), (std::vector<std::string>{"w", "mean"}));
  const std::vector<std::string> names = session->CollectionNames();
  EXPECT_NE(std::find(names.begin(), names.end(), collections::kLosses), names.end());
}

TEST(SessionCollections, TwoSessionsOnOneGraphHaveIndependentCollections) {
  CollectionGraph cg;
  InProcessStore store;
  auto a = NewSession(cg.g, &store);
  auto b = NewSession(cg.g, &store);
  a->AddToCollection(collections::kLosses, cg.loss);
  a->GetCollectionRef("weights").clear();
  b->AddToCollection("only_in_b", cg.loss);
  EXPECT_EQ(a->GetCollection(collections::kLosses), (std::vector<std::string>{"loss"}));
  EXPECT_TRUE(b->GetCollection(collections::kLosses).empty());
  EXPECT_TRUE(a->GetCollection("weights").empty());
  EXPECT_EQ(b->GetCollection("weights"), (std::vector<std::string>{"w"}));
  EXPECT_TRUE(a->GetCollection("only_in_b").empty());
  // A third session still starts from the graph's declarations.
  auto c = NewSession(cg.g, &store);
  EXPECT_EQ(c->GetCollection("weights"), (std::vector<std::string>{"w"}));
  EXPECT_TRUE(c->GetCollection(collections::kLosses).empty());
}

// --- Local variables ---------------------------------------------------------

struct LocalGraph {
  LocalGraph() {
    VariableOptions o = ConstantVar("local_sum", {2}, 5.0);
    o.local = true;
    sum = g.Variable(o);
    VariableOptions count = Int64Var("local_count", {});
    count.local = true;
    counter = g.Variable(count);
    delta = g.Placeholder("delta", DType::kFloat32, {2});
    add = g.AssignAdd(sum, delta, "accumulate");
    set = g.Assign(sum, delta, "reset");
    increment = g.AssignAdd(counter, g.Constant("one", Int64Scalar(1)), "count");
    // A global variable beside them, so that the store has something to do.
    VariableOptions w = Var("w", {2});
    w.init.kind = InitKind::kOnes;
    this->w = g.Variable(w);
    total = g.ReduceSum(g.Mul(this->w, sum), "total");
  }
  Graph g;
  Output sum, counter, delta, add, set, increment, w, total;
};

TEST(SessionLocalVariables, InitializeGivesThemTheirInitialValue) {
  LocalGraph lg;
  RecordingStore store;
  auto session = NewSession(lg.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<std::vector<Tensor>> r = session->Run({lg.sum, lg.counter});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Floats((*r)[0]), (std::vector<float>{5, 5}));
  EXPECT_EQ((*r)[1].data<int64_t>()[0], 0);
}

TEST(SessionLocalVariables, AssignAndAssignAddUpdateThemAndNeverReachTheStore) {
  LocalGraph lg;
  RecordingStore store;
  auto session = NewSession(lg.g, &store);
  ASSERT_TRUE(session->Initialize().ok());

  StatusOr<Tensor> r = session->Run(lg.add, {{lg.delta, Tensor::FromVector({2}, {1, -2})}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Floats(*r), (std::vector<float>{6, 3}));  // the op's value is the new value
  ASSERT_TRUE(session->Run(lg.add, {{lg.delta, Tensor::FromVector({2}, {1, 1})}}).ok());
  EXPECT_EQ(Floats(*session->Run(lg.sum)), (std::vector<float>{7, 4}));
  ASSERT_TRUE(session->Run(lg.increment).ok());
  ASSERT_TRUE(session->Run(lg.increment).ok());
  EXPECT_EQ(session->Run(lg.counter)->data<int64_t>()[0], 2);
  // Read by an op together with a global variable.
  EXPECT_EQ(Floats(*session->Run(lg.total)), (std::vector<float>{11}));
  r = session->Run(lg.set, {{lg.delta, Tensor::FromVector({2}, {0.5, 0.25})}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Floats(*session->Run(lg.sum)), (std::vector<float>{0.5, 0.25}));

  for (const std::string name : {"local_sum", "local_count"}) {
    EXPECT_FALSE(store.Saw(name)) << "'" << name << "' reached the store";
  }
  EXPECT_TRUE(store.created.count("w"));
  EXPECT_TRUE(store.pulled.count("w"));
  EXPECT_EQ(store.pushes, 0);  // local updates need no push at all
}

TEST(SessionLocalVariables, EachSessionHasItsOwn) {
  LocalGraph lg;
  RecordingStore store;
  auto a = NewSession(lg.g, &store);
  auto b = NewSession(lg.g, &store);
  ASSERT_TRUE(a->Initialize().ok());
  ASSERT_TRUE(b->Initialize().ok());
  ASSERT_TRUE(a->Run(lg.add, {{lg.delta, Tensor::FromVector({2}, {10, 10})}}).ok());
  EXPECT_EQ(Floats(*a->Run(lg.sum)), (std::vector<float>{15, 15}));
  EXPECT_EQ(Floats(*b->Run(lg.sum)), (std::vector<float>{5, 5}));
}

TEST(SessionLocalVariables, WritingToAFetchedValueDoesNotChangeTheVariable) {
  LocalGraph lg;
  RecordingStore store;
  auto session = NewSession(lg.g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> fetched = session->Run(lg.sum);
  ASSERT_TRUE(fetched.ok());
  fetched->data<float>()[0] = -1;
  EXPECT_EQ(Floats(*session->Run(lg.sum)), (std::vector<float>{5, 5}));
}

// --- Global non-trainable variables: Assign and AssignAdd ------------------

TEST(SessionAssign, AssignOfAGlobalFloatVariableReachesTheStore) {
  Graph g;
  Output mean = g.Variable(Var("mean", {3}, /*trainable=*/false));
  Output value = g.Placeholder("new_mean", DType::kFloat32, {3});
  Output set = g.Assign(mean, value, "set_mean");
  RecordingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> r = session->Run(set, {{value, Tensor::FromVector({3}, {1.5, -2, 4})}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Floats(*r), (std::vector<float>{1.5, -2, 4}));
  EXPECT_EQ(store.assigns, (std::set<std::string>{"mean"}));
  EXPECT_FALSE(store.last.train_step);
  EXPECT_TRUE(store.gradients.empty());
  EXPECT_EQ(Floats(store.Value("mean")), (std::vector<float>{1.5, -2, 4}));
  // A later Run pulls the new value.
  EXPECT_EQ(Floats(*session->Run(mean)), (std::vector<float>{1.5, -2, 4}));
  // So does another session on the same store.
  auto other = NewSession(g, &store);
  ASSERT_TRUE(other->Initialize().ok());
  EXPECT_EQ(Floats(*other->Run(mean)), (std::vector<float>{1.5, -2, 4}));
}

TEST(SessionAssign, AssignAddOfAGlobalFloatVariableReachesTheStore) {
  Graph g;
  Output total = g.Variable(ConstantVar("total", {2}, 1.0, /*trainable=*/false));
  Output delta = g.Placeholder("delta", DType::kFloat32, {2});
  Output add = g.AssignAdd(total, delta);
  RecordingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> r = session->Run(add, {{delta, Tensor::FromVector({2}, {0.5, -3})}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Floats(*r), (std::vector<float>{1.5, -2}));
  ASSERT_TRUE(session->Run(add, {{delta, Tensor::FromVector({2}, {0.5, -3})}}).ok());
  EXPECT_EQ(store.assign_adds, (std::set<std::string>{"total"}));
  EXPECT_EQ(Floats(*session->Run(total)), (std::vector<float>{2, -5}));
}

TEST(SessionAssign, AssignAndAssignAddOfAGlobalInt64VariableReachTheStore) {
  Graph g;
  Output counter = g.Variable(Int64Var("counter", {}));
  Output set = g.Assign(counter, g.Constant("ten", Int64Scalar(10)), "set_counter");
  Output add = g.AssignAdd(counter, g.Constant("three", Int64Scalar(3)), "add_counter");
  RecordingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> r = session->Run(set);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->dtype(), DType::kInt64);
  EXPECT_EQ(r->data<int64_t>()[0], 10);
  r = session->Run(add);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data<int64_t>()[0], 13);
  ASSERT_TRUE(session->Run(add).ok());
  EXPECT_EQ(store.assigns, (std::set<std::string>{"counter"}));
  EXPECT_EQ(store.assign_adds, (std::set<std::string>{"counter"}));
  EXPECT_EQ(store.Value("counter").data<int64_t>()[0], 16);
  EXPECT_EQ(session->Run(counter)->data<int64_t>()[0], 16);
}

// Two AssignAdds of one variable in one Run are two updates, as they would be
// in two Runs; neither may be lost.
TEST(SessionAssign, TwoAssignAddsOfOneVariableInOneRunBothApply) {
  Graph g;
  Output counter = g.Variable(Int64Var("counter", {}));
  Output add1 = g.AssignAdd(counter, g.Constant("one", Int64Scalar(1)), "add_one");
  Output add2 = g.AssignAdd(counter, g.Constant("two", Int64Scalar(2)), "add_two");
  RecordingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  ASSERT_TRUE(session->Run({add1, add2}).ok());
  EXPECT_EQ(session->Run(counter)->data<int64_t>()[0], 3);
}

// --- Minimize ----------------------------------------------------------------

TEST(SessionMinimize, PushesGradientsOnlyForTrainableVariablesTheLossDependsOn) {
  Graph g;
  Output used = g.Variable(ConstantVar("used", {2}, 1.0));
  g.Variable(ConstantVar("unused", {2}, 1.0));
  Output stat = g.Variable(ConstantVar("statistic", {2}, 2.0, /*trainable=*/false));
  VariableOptions lo = ConstantVar("local_scale", {2}, 3.0);
  lo.local = true;
  Output local = g.Variable(lo);
  Output loss = g.ReduceSum(g.Mul(g.Mul(used, stat), local), "loss");
  Output train = g.Minimize(loss, {}, "train");
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.1));
  ASSERT_TRUE(session->Initialize().ok());
  ASSERT_TRUE(session->Run(train).ok());
  EXPECT_EQ(store.gradients, (std::set<std::string>{"used"}));
  EXPECT_TRUE(store.assigns.empty());
  EXPECT_TRUE(store.last.train_step);
  EXPECT_FALSE(store.Saw("local_scale"));
  // d(loss)/d(used) = statistic * local_scale = 6; SGD at 0.1 takes 0.6 off.
  EXPECT_EQ(Floats(store.last.gradients.at("used")), (std::vector<float>{6, 6}));
  const std::vector<float> after = Floats(store.Value("used"));
  EXPECT_FLOAT_EQ(after[0], 0.4f);
  EXPECT_FLOAT_EQ(after[1], 0.4f);
  EXPECT_EQ(Floats(store.Value("statistic")), (std::vector<float>{2, 2}));
}

TEST(SessionMinimize, VarListNarrowsTheVariablesUpdated) {
  Graph g;
  Output a = g.Variable(ConstantVar("a", {2}, 1.0));
  Output b = g.Variable(ConstantVar("b", {2}, 1.0));
  MinimizeOptions mo;
  mo.var_list = {b};
  Output train = g.Minimize(g.ReduceSum(g.Mul(a, b)), mo);
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.1));
  ASSERT_TRUE(session->Initialize().ok());
  ASSERT_TRUE(session->Run(train).ok());
  EXPECT_EQ(store.gradients, (std::set<std::string>{"b"}));
}

TEST(SessionMinimize, ALossThatReachesNoVariableIsAnErrorNamingTheOps) {
  Graph g;
  g.Variable(ConstantVar("w", {2}, 1.0));
  Output stat = g.Variable(ConstantVar("statistic", {2}, 2.0, /*trainable=*/false));
  Output x = g.Placeholder("x", DType::kFloat32, {2});
  Output train_x = g.Minimize(g.ReduceSum(g.Square(x), "loss_of_x"), {}, "train_x");
  Output train_stat = g.Minimize(g.ReduceSum(stat, "loss_of_statistic"), {}, "train_statistic");
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.1));
  ASSERT_TRUE(session->Initialize().ok());

  StatusOr<Tensor> r = session->Run(train_x, {{x, Tensor::FromVector({2}, {1, 2})}});
  ASSERT_FALSE(r.ok());
  ExpectErrorNaming(r.status(), StatusCode::kInvalidArgument, "train_x");
  EXPECT_TRUE(Contains(r.status().message(), "'loss_of_x'")) << r.status();

  r = session->Run(train_stat);
  ASSERT_FALSE(r.ok());
  ExpectErrorNaming(r.status(), StatusCode::kInvalidArgument, "train_statistic");
  EXPECT_EQ(store.pushes, 0);
}

TEST(SessionMinimize, TwoMinimizeOpsInOneRunAreAnError) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {2}, 1.0));
  Output t1 = g.Minimize(g.ReduceSum(w));
  Output t2 = g.Minimize(g.ReduceMean(w));
  RecordingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<std::vector<Tensor>> r = session->Run({t1, t2});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.pushes, 0);
}

TEST(SessionMinimize, GlobalStepCountsTrainSteps) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {2}, 1.0));
  Output step = g.Variable(Int64Var("global_step", {}));
  Output mean = g.Variable(Var("mean", {2}, /*trainable=*/false));
  Output set_mean = g.Assign(mean, g.Constant("m", Tensor::FromVector({2}, {1, 1})));
  MinimizeOptions mo;
  mo.global_step = step;
  Output loss = g.ReduceSum(g.Square(w), "loss");
  Output train = g.Minimize(loss, mo, "train");
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.01));
  ASSERT_TRUE(session->Initialize().ok());
  EXPECT_EQ(session->Run(step)->data<int64_t>()[0], 0);
  for (int i = 0; i < 3; ++i) {
    StatusOr<std::vector<Tensor>> r = session->Run({loss, train, step});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*r)[2].data<int64_t>()[0], i);  // read before the step is applied
  }
  EXPECT_EQ(store.last.global_step, "global_step");
  // Runs that are not train steps do not count.
  ASSERT_TRUE(session->Run(loss).ok());
  ASSERT_TRUE(session->Run(set_mean).ok());
  EXPECT_EQ(session->Run(step)->data<int64_t>()[0], 3);
}

TEST(SessionMinimize, TheLearningRateNodesValueIsUsed) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {3}, 1.0));
  Output lr = g.Variable(ConstantVar("learning_rate", {}, 0.5, /*trainable=*/false));
  Output new_lr = g.Placeholder("new_learning_rate", DType::kFloat32, {});
  Output set_lr = g.Assign(lr, new_lr);
  // loss = sum(w * c): the gradient is c whatever w is.
  Output c = g.Constant("c", Tensor::FromVector({3}, {1, -2, 4}));
  MinimizeOptions mo;
  mo.learning_rate = lr;
  Output train = g.Minimize(g.ReduceSum(g.Mul(w, c)), mo);
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.01));  // the configured rate is not used
  ASSERT_TRUE(session->Initialize().ok());

  ASSERT_TRUE(session->Run(train).ok());
  EXPECT_FLOAT_EQ(store.last.learning_rate, 0.5f);
  std::vector<float> after = Floats(*session->Run(w));
  EXPECT_FLOAT_EQ(after[0], 1 - 0.5f * 1);
  EXPECT_FLOAT_EQ(after[1], 1 - 0.5f * -2);
  EXPECT_FLOAT_EQ(after[2], 1 - 0.5f * 4);

  ASSERT_TRUE(session->Run(set_lr, {{new_lr, Tensor::FromVector({}, {0.25})}}).ok());
  ASSERT_TRUE(session->Run(train).ok());
  EXPECT_FLOAT_EQ(store.last.learning_rate, 0.25f);
  const std::vector<float> before = after;
  after = Floats(*session->Run(w));
  EXPECT_FLOAT_EQ(after[0], before[0] - 0.25f * 1);
  EXPECT_FLOAT_EQ(after[1], before[1] - 0.25f * -2);
  EXPECT_FLOAT_EQ(after[2], before[2] - 0.25f * 4);
}

// A learning_rate node is "sent with each push"; a schedule may well reach
// 0 (the first step of a linear warm-up), which must mean "do not move".
TEST(SessionMinimize, ALearningRateNodeOfZeroLeavesTheVariablesUnchanged) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {2}, 1.0));
  MinimizeOptions mo;
  mo.learning_rate = g.Variable(ConstantVar("learning_rate", {}, 0.0, /*trainable=*/false));
  Output train = g.Minimize(g.ReduceSum(g.Mul(w, g.Constant("c", Tensor::FromVector({2}, {1, 3})))), mo);
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.1));
  ASSERT_TRUE(session->Initialize().ok());
  ASSERT_TRUE(session->Run(train).ok());
  EXPECT_EQ(Floats(*session->Run(w)), (std::vector<float>{1, 1}));
}

TEST(SessionMinimize, MinimizingAVariableItselfUpdatesIt) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {}, 1.0));
  Output train = g.Minimize(w);
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.25));
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> r = session->Run(train);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(store.gradients, (std::set<std::string>{"w"}));
  EXPECT_FLOAT_EQ(session->Run(w)->data<float>()[0], 0.75f);  // d(w)/d(w) = 1
}

TEST(SessionMinimize, WithoutALearningRateNodeTheConfiguredRateIsUsed) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {2}, 1.0));
  Output c = g.Constant("c", Tensor::FromVector({2}, {1, 3}));
  Output train = g.Minimize(g.ReduceSum(g.Mul(w, c)));
  RecordingStore store;
  auto session = NewSession(g, &store, Sgd(0.1));
  ASSERT_TRUE(session->Initialize().ok());
  ASSERT_TRUE(session->Run(train).ok());
  EXPECT_LT(store.last.learning_rate, 0.0f);  // negative: "use the servers' rate"
  const std::vector<float> after = Floats(*session->Run(w));
  EXPECT_FLOAT_EQ(after[0], 0.9f);
  EXPECT_FLOAT_EQ(after[1], 0.7f);
}

TEST(SessionMinimize, ANonScalarLearningRateIsAnErrorNamingTheMinimize) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {2}, 1.0));
  MinimizeOptions mo;
  mo.learning_rate = g.Variable(ConstantVar("rates", {2}, 0.1, /*trainable=*/false));
  Output train = g.Minimize(g.ReduceSum(w), mo, "train");
  RecordingStore store;
  auto session = NewSession(g, &store);
  ASSERT_TRUE(session->Initialize().ok());
  StatusOr<Tensor> r = session->Run(train);
  ASSERT_FALSE(r.ok());
  ExpectErrorNaming(r.status(), StatusCode::kInvalidArgument, "train");
  EXPECT_EQ(store.pushes, 0);
}

TEST(SessionInitialize, IsIdempotentAndKeepsValuesAlreadyInTheStore) {
  Graph g;
  Output w = g.Variable(ConstantVar("w", {2}, 1.0));
  Output train = g.Minimize(g.ReduceSum(w));
  InProcessStore store;
  auto chief = NewSession(g, &store, Sgd(0.5));
  ASSERT_TRUE(chief->Initialize().ok());
  ASSERT_TRUE(chief->Run(train).ok());
  ASSERT_TRUE(chief->Initialize().ok());
  auto other = NewSession(g, &store, Sgd(0.5));
  ASSERT_TRUE(other->Initialize().ok());
  EXPECT_EQ(Floats(*other->Run(w)), (std::vector<float>{0.5, 0.5}));
  EXPECT_EQ(Floats(*chief->Run(w)), (std::vector<float>{0.5, 0.5}));
}

TEST(SessionInitialize, AConflictingDeclarationInTheStoreIsAnError) {
  Graph a;
  a.Variable(Var("w", {2}));
  Graph b;
  b.Variable(Var("w", {3}));
  InProcessStore store;
  ASSERT_TRUE(NewSession(a, &store)->Initialize().ok());
  Status s = NewSession(b, &store)->Initialize();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.message(), "'w'")) << s;
}

// --- Sparse tables over the servers' tables -------------------------------------

Tensor IdTensor(Shape shape, const std::vector<int64_t>& ids) {
  Tensor t(DType::kInt64, std::move(shape));
  std::copy(ids.begin(), ids.end(), t.data<int64_t>());
  return t;
}

// Every row of `ids` in `table` as the store holds it.
Tensor Rows(VariableStore& store, const std::string& table, const std::vector<int64_t>& ids) {
  StatusOr<std::map<std::string, Tensor>> r =
      store.SparsePull({{table, IdTensor({static_cast<int64_t>(ids.size())}, ids)}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->at(table) : Tensor();
}

SparseTableOptions UniformTable(const std::string& name, int32_t dim, uint64_t seed) {
  SparseTableOptions o;
  o.name = name;
  o.dim = dim;
  o.init.kind = InitKind::kUniform;
  o.init.minval = -0.1;
  o.init.maxval = 0.1;
  o.init.seed = seed;
  return o;
}

TEST(SessionSparse, SgdAtRateOneTakesEachTouchedRowsGradientOffIt) {
  Graph g;
  Output table = g.SparseTable(UniformTable("emb", 2, 4));
  Output ids = g.Placeholder("ids", DType::kInt64, {2, 3});
  Output weights = g.Constant("R", Tensor::FromVector({2, 2}, {1, 2, 3, 4}));
  Output train = g.Minimize(g.ReduceSum(g.Mul(g.EmbeddingBag(table, ids, Combiner::kSum), weights)));
  InProcessStore store;
  auto session = NewSession(g, &store, Sgd(1.0));
  ASSERT_TRUE(session->Initialize().ok());
  const std::vector<int64_t> all{3, 5, 8, 100};
  const Tensor before = Rows(store, "emb", all);
  // Id 5 sits in both bags: its gradient is the sum of their weights.
  ASSERT_TRUE(session->Run(train, {{ids, IdTensor({2, 3}, {3, 5, -1, 5, 8, 5})}}).ok());
  const Tensor after = Rows(store, "emb", all);
  const std::vector<float> grad{1, 2, 1 + 3 + 3, 2 + 4 + 4, 3, 4, 0, 0};  // rows 3, 5, 8, 100
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(after.data<float>()[i], before.data<float>()[i] - grad[i]) << "element " << i;
  }
  EXPECT_EQ(store.pushes(), 1);
}

// Click-like examples: a label from a planted logistic model over a bag of
// `kSlots` ids (some missing), one user id, and two dense features.
struct ClickExamples {
  static constexpr int kSlots = 4;
  static constexpr int64_t kVocab = 60;
  Tensor bag, user, dense, labels;
};

ClickExamples MakeClicks(uint64_t seed, int64_t batch) {
  std::mt19937_64 rng(seed);
  auto uniform = [&rng] { return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0); };
  // The planted weights are a fixed function of the id.
  auto weight = [](int64_t id) { return 2.5 * std::sin(1.7 * static_cast<double>(id) + 0.3); };
  ClickExamples c;
  c.bag = Tensor(DType::kInt64, {batch, ClickExamples::kSlots});
  c.user = Tensor(DType::kInt64, {batch});
  c.dense = Tensor(DType::kFloat32, {batch, 2});
  c.labels = Tensor(DType::kFloat32, {batch});
  for (int64_t b = 0; b < batch; ++b) {
    double logit = -0.4;
    for (int k = 0; k < ClickExamples::kSlots; ++k) {
      const int64_t id = uniform() < 0.2 ? -1 : static_cast<int64_t>(uniform() * ClickExamples::kVocab);
      c.bag.data<int64_t>()[b * ClickExamples::kSlots + k] = id;
      if (id >= 0) logit += weight(id);
    }
    const int64_t user = static_cast<int64_t>(uniform() * 20);
    c.user.data<int64_t>()[b] = user;
    logit += 0.5 * weight(user + 1000);
    for (int j = 0; j < 2; ++j) {
      const double x = 2 * uniform() - 1;
      c.dense.data<float>()[b * 2 + j] = static_cast<float>(x);
      logit += (j == 0 ? 1.0 : -0.5) * x;
    }
    c.labels.data<float>()[b] = uniform() < 1.0 / (1.0 + std::exp(-logit)) ? 1.0f : 0.0f;
  }
  return c;
}

// Logistic regression: a bag of dim-1 rows (the "wide" weights) plus a bias.
struct WideModel {
  WideModel() {
    SparseTableOptions t;
    t.name = "wide";
    t.dim = 1;
    table = g.SparseTable(t);
    bag = g.Placeholder("bag", DType::kInt64, {-1, ClickExamples::kSlots});
    labels = g.Placeholder("labels", DType::kFloat32, {-1});
    Output bias = g.Variable(Var("bias", {1}));
    Output logits = g.Reshape(g.Add(g.EmbeddingBag(table, bag, Combiner::kSum), bias), {-1}, "logits");
    loss = g.ReduceMean(g.SigmoidCrossEntropyWithLogits(logits, labels), "loss");
    train = g.Minimize(loss, {}, "train");
  }
  FeedMap Feeds(const ClickExamples& c) const { return {{bag, c.bag}, {labels, c.labels}}; }
  Graph g;
  Output table, bag, labels, loss, train;
};

SessionOptions Adagrad(double lr) {
  SessionOptions o;
  o.optimizer.kind = "adagrad";
  o.optimizer.learning_rate = lr;
  return o;
}

float LossOf(Session& s, Output loss, const FeedMap& feeds) {
  StatusOr<Tensor> l = s.Run(loss, feeds);
  EXPECT_TRUE(l.ok()) << l.status();
  return l.ok() ? l->data<float>()[0] : NAN;
}

TEST(SessionSparse, LogisticRegressionOverAnEmbeddingBagLearnsThePlantedWeights) {
  WideModel m;
  InProcessStore store;
  auto session = NewSession(m.g, &store, Adagrad(0.3));
  ASSERT_TRUE(session->Initialize().ok());
  const ClickExamples held_out = MakeClicks(999, 2000);
  const float initial = LossOf(*session, m.loss, m.Feeds(held_out));
  EXPECT_NEAR(initial, std::log(2.0f), 1e-6);  // zero rows and bias: p = 1/2
  for (int step = 0; step < 300; ++step) {
    ASSERT_TRUE(session->Run(m.train, m.Feeds(MakeClicks(step, 64))).ok()) << "step " << step;
  }
  const float trained = LossOf(*session, m.loss, m.Feeds(held_out));
  EXPECT_LT(trained, 0.7f * initial) << "initial " << initial << ", trained " << trained;
}

// A small wide & deep model: [user embedding, item-bag mean, dense features]
// through a hidden layer, plus the wide bag's sum, into one logit.
struct WideAndDeepModel {
  WideAndDeepModel() {
    Output user_table = g.SparseTable(UniformTable("emb/user", 4, 11));
    Output item_table = g.SparseTable(UniformTable("emb/item", 3, 12));
    SparseTableOptions wide_options;
    wide_options.name = "wide";
    wide_options.dim = 1;
    Output wide_table = g.SparseTable(wide_options);
    bag = g.Placeholder("bag", DType::kInt64, {-1, ClickExamples::kSlots});
    user = g.Placeholder("user", DType::kInt64, {-1});
    dense = g.Placeholder("dense", DType::kFloat32, {-1, 2});
    labels = g.Placeholder("labels", DType::kFloat32, {-1});
    VariableOptions w1 = Var("deep/W1", {9, 8});
    w1.init.kind = InitKind::kGlorotUniform;
    w1.init.seed = 13;
    VariableOptions w2 = Var("deep/W2", {8, 1});
    w2.init.kind = InitKind::kGlorotUniform;
    w2.init.seed = 14;
    Output joined = g.Concat({g.EmbeddingLookup(user_table, user), g.EmbeddingBag(item_table, bag, Combiner::kMean),
                              dense});
    Output hidden = g.Relu(g.Add(g.MatMul(joined, g.Variable(w1)), g.Variable(Var("deep/b1", {8}))));
    Output deep = g.Add(g.MatMul(hidden, g.Variable(w2)), g.Variable(Var("deep/b2", {1})));
    Output logits = g.Reshape(g.Add(deep, g.EmbeddingBag(wide_table, bag, Combiner::kSum)), {-1});
    loss = g.ReduceMean(g.SigmoidCrossEntropyWithLogits(logits, labels), "loss");
    train = g.Minimize(loss, {}, "train");
  }
  FeedMap Feeds(const ClickExamples& c) const {
    return {{bag, c.bag}, {user, c.user}, {dense, c.dense}, {labels, c.labels}};
  }
  Graph g;
  Output bag, user, dense, labels, loss, train;
};

// Trains the wide & deep model for `steps` on `store`; its final loss on a
// held-out batch.
float TrainWideAndDeep(const WideAndDeepModel& m, VariableStore* store, int steps) {
  auto session = NewSession(m.g, store, Adagrad(0.2));
  EXPECT_TRUE(session->Initialize().ok());
  for (int step = 0; step < steps; ++step) {
    Status s = session->Run(m.train, m.Feeds(MakeClicks(step, 32))).status();
    EXPECT_TRUE(s.ok()) << "step " << step << ": " << s;
    if (!s.ok()) return NAN;
  }
  return LossOf(*session, m.loss, m.Feeds(MakeClicks(999, 1000)));
}

TEST(SessionSparse, WideAndDeepOverTwoServersEndsBitIdenticalToInProcess) {
  const int kSteps = 60;
  WideAndDeepModel m;
  InProcessStore local;
  const float local_loss = TrainWideAndDeep(m, &local, kSteps);

  EventLoop loop(2);
  LocalClusterOptions co;
  co.servers = 2;
  StatusOr<std::unique_ptr<LocalCluster>> cluster = LocalCluster::Start(loop, WithTestAuth(co));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  AsioTransport transport(loop, (*cluster)->endpoints(), TestTransportOptions());
  PsClient client(&transport);
  const float remote_loss = TrainWideAndDeep(m, &client, kSteps);
  EXPECT_EQ(local_loss, remote_loss);

  std::vector<int64_t> items, users;
  for (int64_t id = 0; id < ClickExamples::kVocab; ++id) items.push_back(id);
  for (int64_t id = 0; id < 20; ++id) users.push_back(id);
  // The rows are spread over both servers.
  std::set<int> servers;
  for (int64_t id : items) servers.insert(ServerOfId(id, 2));
  ASSERT_EQ(servers.size(), 2u);
  for (const auto& [table, ids] : std::map<std::string, std::vector<int64_t>>{
           {"emb/user", users}, {"emb/item", items}, {"wide", items}}) {
    EXPECT_TRUE(Rows(local, table, ids).BitEqual(Rows(client, table, ids))) << table;
  }
  for (const char* name : {"deep/W1", "deep/b1", "deep/W2", "deep/b2"}) {
    StatusOr<std::map<std::string, Tensor>> a = local.Pull({name}), b = client.Pull({name});
    ASSERT_TRUE(a.ok() && b.ok()) << name;
    EXPECT_TRUE(a->at(name).BitEqual(b->at(name))) << name;
  }
  // And training did something.
  EXPECT_LT(local_loss, 0.9f * std::log(2.0f));
}

}  // namespace
}  // namespace cairn
