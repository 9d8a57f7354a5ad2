#include "ps/sparse_table.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

namespace cairn {
namespace {

SparseTableSpec Spec(const std::string& name, int32_t dim, InitKind kind = InitKind::kUniform, uint64_t seed = 7) {
  SparseTableSpec s;
  s.name = name;
  s.dim = dim;
  s.init.kind = kind;
  s.init.seed = seed;
  return s;
}

OptimizerSpec Opt(const std::string& kind, double lr = 0.1) {
  OptimizerSpec o;
  o.kind = kind;
  o.learning_rate = lr;
  o.l1 = 0.01;  // FTRL's: makes its thresholding visible
  o.l2 = 0.02;
  return o;
}

std::unique_ptr<SparseTable> Make(const SparseTableSpec& spec, const OptimizerSpec& o) {
  auto t = SparseTable::Create(spec, o);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::vector<float> PullOne(const SparseTable& t, int64_t id) {
  std::vector<float> row(t.spec().dim);
  EXPECT_TRUE(t.Pull(&id, 1, row.data()).ok());
  return row;
}

std::vector<float> InitialRow(const SparseTableSpec& spec, int64_t id) {
  std::vector<float> row(spec.dim);
  InitializeSparseRow(spec, id, row.data());
  return row;
}

// --- Routing and first-touch values -------------------------------------------

TEST(SparseRouting, IsAPureFunctionSpreadingStructuredIdsEvenly) {
  for (int servers : {1, 2, 3, 7}) {
    for (int64_t stride : {1, 1024, 1 << 20}) {
      std::vector<int> count(servers);
      const int n = 90000;
      for (int64_t i = 0; i < n; ++i) {
        const int s = ServerOfId(i * stride, servers);
        ASSERT_GE(s, 0);
        ASSERT_LT(s, servers);
        ASSERT_EQ(s, ServerOfId(i * stride, servers));
        ++count[s];
      }
      for (int s = 0; s < servers; ++s) {
        EXPECT_NEAR(count[s], n / servers, 0.02 * n / servers) << servers << " servers, stride " << stride;
      }
    }
  }
  // Not id % S: about half the ids land where id % 2 would put them.
  int same = 0;
  for (int64_t i = 0; i < 10000; ++i) same += ServerOfId(i, 2) == i % 2;
  EXPECT_NEAR(same, 5000, 300);
}

TEST(SparseInit, ARowsFirstValuesAreTheSameOnAnyServerCountAndInAnyTouchOrder) {
  const SparseTableSpec spec = Spec("emb", 8, InitKind::kNormal);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 200; ++i) ids.push_back(i * 7919 - 500);
  // 1, 2 and 3 servers, each touching its ids in a different order with a
  // zero gradient (SGD: the row is created and keeps its values).
  for (int servers : {1, 2, 3}) {
    std::vector<std::unique_ptr<SparseTable>> parts;
    for (int s = 0; s < servers; ++s) parts.push_back(Make(spec, Opt("sgd")));
    std::vector<int64_t> order = ids;
    std::mt19937 rng(servers);
    std::shuffle(order.begin(), order.end(), rng);
    const std::vector<float> zero(spec.dim, 0.0f);
    for (size_t i = 0; i < order.size(); i += 2) {  // every other id touched
      SparseTable& t = *parts[ServerOfId(order[i], servers)];
      ASSERT_TRUE(t.ApplyGradients(&order[i], 1, zero.data()).ok());
    }
    for (int64_t id : ids) {
      EXPECT_EQ(PullOne(*parts[ServerOfId(id, servers)], id), InitialRow(spec, id)) << "id " << id;
    }
  }
  // Distinct rows differ, and the seed matters.
  EXPECT_NE(InitialRow(spec, 1), InitialRow(spec, 2));
  EXPECT_NE(InitialRow(spec, 1), InitialRow(Spec("emb", 8, InitKind::kNormal, /*seed=*/8), 1));
}

TEST(SparseTable, APullCreatesNothingAndReturnsInitialValues) {
  auto t = Make(Spec("emb", 4), Opt("adagrad"));
  const std::vector<int64_t> ids = {5, -3, 5, 1LL << 62};
  std::vector<float> out(ids.size() * 4);
  ASSERT_TRUE(t->Pull(ids.data(), ids.size(), out.data()).ok());
  EXPECT_EQ(t->rows(), 0);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(std::vector<float>(out.begin() + 4 * i, out.begin() + 4 * i + 4), InitialRow(t->spec(), ids[i]));
  }
}

// --- Optimizers ------------------------------------------------------------------

std::unique_ptr<Optimizer> MakeOptimizer(const OptimizerSpec& o) {
  auto opt = Optimizer::Create(o);
  EXPECT_TRUE(opt.ok()) << opt.status();
  return opt.ok() ? std::move(*opt) : nullptr;
}

// The dense optimizer applied to a one-row variable per id, with the slots'
// initial values: what each touched row must hold, bit for bit.
struct DenseReference {
  DenseReference(const SparseTableSpec& spec, const OptimizerSpec& o) : spec(spec), opt(MakeOptimizer(o)) {}
  void Apply(int64_t id, const float* grad, float lr) {
    auto it = rows.find(id);
    if (it == rows.end()) {
      Row r;  // Tensors: 64-byte-aligned buffers, as a dense shard's
      r.values = Tensor::FromVector({spec.dim}, InitialRow(spec, id));
      for (const SlotDef& s : opt->Slots()) {
        const int64_t w = s.scalar ? 1 : spec.dim;
        r.slots.push_back(Tensor::FromVector({w}, std::vector<float>(w, s.initial)));
      }
      it = rows.emplace(id, std::move(r)).first;
    }
    std::vector<float*> slots;
    for (Tensor& s : it->second.slots) slots.push_back(s.data<float>());
    opt->Apply(it->second.values.data<float>(), grad, spec.dim, slots.data(), lr);
  }
  static std::vector<float> Floats(const Tensor& t) {
    return std::vector<float>(t.data<float>(), t.data<float>() + t.num_elements());
  }
  struct Row {
    Tensor values;
    std::vector<Tensor> slots;
  };
  SparseTableSpec spec;
  std::unique_ptr<Optimizer> opt;
  std::map<int64_t, Row> rows;
};

class SparseOptimizerTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SparseOptimizerTest, TouchedRowsMatchTheDenseUpdateAndUntouchedRowsNeverChange) {
  const SparseTableSpec spec = Spec("emb/user", 6);
  const OptimizerSpec o = Opt(GetParam());
  auto table = Make(spec, o);
  DenseReference ref(spec, o);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> pick(0, 299);  // a vocabulary of 300 ids, some never touched
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (int step = 0; step < 40; ++step) {
    std::vector<int64_t> ids;
    std::set<int64_t> seen;
    while (ids.size() < 25) {
      int64_t id = pick(rng) * 3;  // ids 0, 3, 6, ...: every id not a multiple of 3 is never touched
      if (seen.insert(id).second) ids.push_back(id);
    }
    std::vector<float> grads(ids.size() * spec.dim);
    for (float& x : grads) x = g(rng);
    const float lr = step % 10 == 9 ? 0.05f : -1.0f;  // now and then the push's own rate
    ASSERT_TRUE(table->ApplyGradients(ids.data(), ids.size(), grads.data(), lr).ok());
    for (size_t i = 0; i < ids.size(); ++i) ref.Apply(ids[i], grads.data() + i * spec.dim, lr >= 0 ? lr : o.learning_rate);
  }
  EXPECT_EQ(table->rows(), static_cast<int64_t>(ref.rows.size()));
  for (const auto& [id, row] : ref.rows) EXPECT_EQ(PullOne(*table, id), DenseReference::Floats(row.values)) << "id " << id;
  for (int64_t id = 1; id < 900; id += 3) EXPECT_EQ(PullOne(*table, id), InitialRow(spec, id)) << "untouched id " << id;
  // The slots too, through an export.
  SparseRows rows = table->Export();
  ASSERT_EQ(rows.size(), ref.rows.size());
  ASSERT_EQ(rows.slots.size(), ref.opt->Slots().size());
  size_t i = 0;
  for (const auto& [id, row] : ref.rows) {  // std::map: sorted by id, as Export is
    ASSERT_EQ(rows.ids[i], id);
    for (size_t s = 0; s < rows.slots.size(); ++s) {
      const size_t w = row.slots[s].num_elements();
      EXPECT_EQ(std::vector<float>(rows.slots[s].begin() + i * w, rows.slots[s].begin() + (i + 1) * w),
                DenseReference::Floats(row.slots[s]))
          << table->SlotName(s) << " of id " << id;
    }
    ++i;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryKind, SparseOptimizerTest,
                         ::testing::Values("sgd", "momentum", "adagrad", "adam", "ftrl"));

TEST(SparseTable, ARowsUpdatesDoNotDependOnWhereItIsStored) {
  // Table b holds 3 other rows first, so the same ids sit at other record
  // addresses (dim 6: records of 8 + 24 + slots bytes, alignments differ).
  for (const char* kind : {"adagrad", "adam", "ftrl"}) {
    const SparseTableSpec spec = Spec("emb", 6);
    auto a = Make(spec, Opt(kind));
    auto b = Make(spec, Opt(kind));
    const std::vector<int64_t> others = {1001, 1002, 1003};
    const std::vector<float> zero(others.size() * 6, 0.0f);
    ASSERT_TRUE(b->ApplyGradients(others.data(), others.size(), zero.data()).ok());
    std::vector<int64_t> ids = {5, 6, 7, 8};
    std::vector<float> grads(ids.size() * 6);
    for (int step = 0; step < 20; ++step) {
      for (size_t i = 0; i < grads.size(); ++i) grads[i] = std::sin(static_cast<float>(step * 31 + i));
      ASSERT_TRUE(a->ApplyGradients(ids.data(), ids.size(), grads.data()).ok());
      std::reverse(ids.begin(), ids.end());  // b gets the same rows in another order
      std::vector<float> reversed(grads.size());
      for (size_t i = 0; i < ids.size(); ++i) std::copy_n(grads.begin() + (ids.size() - 1 - i) * 6, 6, reversed.begin() + i * 6);
      ASSERT_TRUE(b->ApplyGradients(ids.data(), ids.size(), reversed.data()).ok());
      std::reverse(ids.begin(), ids.end());
    }
    for (int64_t id : ids) EXPECT_EQ(PullOne(*a, id), PullOne(*b, id)) << kind << " id " << id;
  }
}

TEST(SparseTable, LazyAdamCorrectsEachRowsBiasByItsOwnUpdateCount) {
  OptimizerSpec o = Opt("adam", 0.01);
  auto table = Make(Spec("emb", 1, InitKind::kZeros), o);
  const int64_t busy = 1, rare = 2;
  const float g = 0.5f;
  for (int step = 0; step < 5; ++step) ASSERT_TRUE(table->ApplyGradients(&busy, 1, &g).ok());
  ASSERT_TRUE(table->ApplyGradients(&rare, 1, &g).ok());
  // The rare row's one update is Adam's first step (t = 1): with m = (1-b1) g
  // and v = (1-b2) g^2 the bias-corrected step is lr * g / (|g| + eps') ~ lr.
  EXPECT_NEAR(PullOne(*table, rare)[0], -0.01f, 1e-5f);
  // Five steps of a constant gradient move about 5 lr.
  EXPECT_NEAR(PullOne(*table, busy)[0], -0.05f, 1e-4f);
  EXPECT_EQ(table->SlotName(2), "emb/Adam/beta1_power");
}

TEST(SparseTable, FtrlKeepsARowAtZeroWhileItsLinearTermIsBelowL1) {
  OptimizerSpec o = Opt("ftrl", 0.1);
  o.l1 = 1.0;
  auto table = Make(Spec("w", 2, InitKind::kZeros), o);
  const int64_t id = 9;
  const float small[2] = {0.3f, -0.2f};
  ASSERT_TRUE(table->ApplyGradients(&id, 1, small).ok());
  EXPECT_EQ(PullOne(*table, id), (std::vector<float>{0.0f, 0.0f}));
  const float big[2] = {3.0f, 0.0f};
  ASSERT_TRUE(table->ApplyGradients(&id, 1, big).ok());
  EXPECT_LT(PullOne(*table, id)[0], 0.0f);
  EXPECT_EQ(PullOne(*table, id)[1], 0.0f);
}

// --- Refusals change nothing -------------------------------------------------

TEST(SparseTable, AGradientNamingAnIdTwiceIsRefusedWhole) {
  auto table = Make(Spec("emb", 2), Opt("sgd"));
  const std::vector<int64_t> ids = {4, 8, 4};
  const std::vector<float> grads(6, 1.0f);
  Status s = table->ApplyGradients(ids.data(), ids.size(), grads.data());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("more than once"), std::string::npos) << s;
  EXPECT_EQ(table->rows(), 0);
  EXPECT_EQ(PullOne(*table, 8), InitialRow(table->spec(), 8));
}

// The ids one server of S holds spread over the whole index: the top bits
// of their tags (their home slots) do not follow the server's. (When they
// were MixId's own high bits, one of 2 servers used half its index.)
TEST(SparseTable, TheIdsOfOneServerSpreadOverTheWholeIndex) {
  for (int servers : {2, 3, 8}) {
    std::vector<int> homes(16, 0);
    int held = 0;
    for (int64_t id = 0; held < 160000; ++id) {
      if (ServerOfId(id, servers) != servers - 1) continue;
      ++held;
      ++homes[SparseTable::IndexTag(id) >> 28];
    }
    for (int h = 0; h < 16; ++h) EXPECT_NEAR(homes[h], 10000, 500) << servers << " servers, top bits " << h;
  }
}

// Pairs of ids with the same IndexTag: the index keeps only those 32 bits
// of an id and checks the record for the id itself.
std::vector<std::pair<int64_t, int64_t>> IdsSharingATag(int wanted) {
  std::vector<std::pair<uint32_t, int64_t>> tags;
  for (int64_t id = 1; id <= 400000; ++id) tags.emplace_back(SparseTable::IndexTag(id), id);
  std::sort(tags.begin(), tags.end());
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (size_t i = 1; i < tags.size() && static_cast<int>(pairs.size()) < wanted; ++i) {
    if (tags[i].first == tags[i - 1].first) pairs.emplace_back(tags[i - 1].second, tags[i].second);
  }
  return pairs;
}

TEST(SparseTable, IdsWithTheSameIndexTagKeepTheirOwnRows) {
  const auto pairs = IdsSharingATag(4);
  ASSERT_GE(pairs.size(), 2u);  // ~18 expected among 400,000 ids
  for (const char* kind : {"sgd", "adagrad"}) {
    auto t = Make(Spec("emb", 3), Opt(kind));
    auto replay = Make(Spec("emb", 3), Opt(kind));  // each id in a table of its own
    for (const auto& [a, b] : pairs) {
      // a alone first: a pull of b finds a's tag, and must still give b's
      // initial values and create nothing.
      const std::vector<float> ga = {1, 2, 3};
      ASSERT_TRUE(t->ApplyGradients(&a, 1, ga.data()).ok());
      EXPECT_EQ(PullOne(*t, b), InitialRow(t->spec(), b));
      // Then both in one push, b first: b's row is created past a's slot.
      const std::vector<int64_t> ids = {b, a};
      const std::vector<float> g = {-1, 0.5f, 2, 4, -3, 1};
      ASSERT_TRUE(t->ApplyGradients(ids.data(), 2, g.data()).ok());
      ASSERT_TRUE(replay->ApplyGradients(&a, 1, ga.data()).ok());
      ASSERT_TRUE(replay->ApplyGradients(&b, 1, g.data()).ok());
      ASSERT_TRUE(replay->ApplyGradients(&a, 1, g.data() + 3).ok());
      EXPECT_EQ(PullOne(*t, a), PullOne(*replay, a)) << a;
      EXPECT_EQ(PullOne(*t, b), PullOne(*replay, b)) << b;
      EXPECT_NE(PullOne(*t, a), PullOne(*t, b));
    }
    EXPECT_EQ(t->rows(), static_cast<int64_t>(2 * pairs.size()));
    // An import keeps both of each pair, and refuses a pair's repeat.
    const SparseRows rows = t->Export();
    auto back = Make(Spec("emb", 3), Opt(kind));
    ASSERT_TRUE(back->Import(rows).ok());
    for (const auto& [a, b] : pairs) {
      EXPECT_EQ(PullOne(*back, a), PullOne(*t, a));
      EXPECT_EQ(PullOne(*back, b), PullOne(*t, b));
    }
    SparseRows repeated = rows;
    repeated.ids.back() = repeated.ids.front();
    EXPECT_EQ(back->Import(repeated).code(), StatusCode::kInvalidArgument);
  }
}

// Large pushes are checked bucket by bucket of their ids' hashes: one
// repeat anywhere among 100,000 ids is found, and distinct ids (0 and the
// extremes among them) pass.
TEST(SparseTable, ARepeatAnywhereInALargeGradientIsFound) {
  auto table = Make(Spec("emb", 1), Opt("sgd"));
  std::mt19937_64 rng(11);
  std::set<int64_t> distinct = {0, 1, -1, INT64_MAX, kReservedSparseId + 1};
  while (distinct.size() < 100000) distinct.insert(static_cast<int64_t>(rng()));
  std::vector<int64_t> ids(distinct.begin(), distinct.end());
  std::shuffle(ids.begin(), ids.end(), rng);
  EXPECT_TRUE(table->CheckGradients(ids.data(), ids.size()).ok());
  for (size_t copy_to : {size_t{1}, size_t{50000}, ids.size() - 1}) {
    std::vector<int64_t> repeated = ids;
    repeated[copy_to] = repeated[copy_to == 1 ? 0 : copy_to / 3];
    Status s = table->CheckGradients(repeated.data(), repeated.size());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "repeat at " << copy_to << ": " << s;
  }
  EXPECT_EQ(table->rows(), 0);
}

// A push of kParallelApplyRows ids or more is located and updated by two
// threads: it must leave every row and slot bit-identical to the same
// updates applied in pushes small enough for one thread, with new and old
// ids mixed, ids with the same index tag, and a cut pending
// (the cut still sees the rows as they were).
TEST(SparseTable, ALargePushSharedWithAnotherCoreEqualsTheOneThreadUpdate) {
  const size_t n = SparseTable::kParallelApplyRows * 2 + 123;
  std::vector<int64_t> ids;
  for (const auto& [a, b] : IdsSharingATag(6)) {
    ids.push_back(a);
    ids.push_back(b);
  }
  std::mt19937_64 rng(5);
  std::set<int64_t> seen(ids.begin(), ids.end());
  while (ids.size() < n) {
    const int64_t id = static_cast<int64_t>(rng() % 5000000);
    if (seen.insert(id).second) ids.push_back(id);
  }
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<float> grads(n * 3);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i % 17) * 0.125f - 1.0f;
  for (const char* kind : {"sgd", "adagrad", "adam", "ftrl"}) {
    SCOPED_TRACE(kind);
    auto big = Make(Spec("emb", 3), Opt(kind));
    auto small = Make(Spec("emb", 3), Opt(kind));
    // Half the ids exist before (every other one), half are new to the big push.
    std::vector<int64_t> before;
    std::vector<float> before_grads;
    for (size_t i = 0; i < n; i += 2) {
      before.push_back(ids[i]);
      before_grads.insert(before_grads.end(), grads.begin() + 3 * i, grads.begin() + 3 * i + 3);
    }
    for (SparseTable* t : {big.get(), small.get()}) {
      for (size_t first = 0; first < before.size(); first += 1000) {
        const size_t count = std::min<size_t>(1000, before.size() - first);
        ASSERT_TRUE(t->ApplyGradients(before.data() + first, count, before_grads.data() + 3 * first).ok());
      }
    }
    const SparseRows as_of_cut = big->Export();
    const SparseTable::Records cut = big->CopyRecords();
    ASSERT_TRUE(big->ApplyGradients(ids.data(), n, grads.data()).ok());  // the parallel path
    for (size_t first = 0; first < n; first += 5000) {  // the one-thread path
      const size_t count = std::min<size_t>(5000, n - first);
      ASSERT_TRUE(small->ApplyGradients(ids.data() + first, count, grads.data() + 3 * first).ok());
    }
    const SparseRows a = big->Export(), b = small->Export();
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.values, b.values);
    EXPECT_EQ(a.slots, b.slots);
    const SparseRows at_cut = big->SortRecords(cut);
    EXPECT_EQ(at_cut.ids, as_of_cut.ids);
    EXPECT_EQ(at_cut.values, as_of_cut.values);
    EXPECT_EQ(at_cut.slots, as_of_cut.slots);
  }
}

TEST(SparseTable, TheReservedIdAndANonTrainableTableAreRefused) {
  auto table = Make(Spec("emb", 2), Opt("sgd"));
  const int64_t reserved = kReservedSparseId;
  const float grad[2] = {1, 1};
  float out[2];
  EXPECT_EQ(table->ApplyGradients(&reserved, 1, grad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(table->Pull(&reserved, 1, out).code(), StatusCode::kInvalidArgument);
  SparseTableSpec frozen = Spec("frozen", 2);
  frozen.trainable = false;
  auto f = Make(frozen, Opt("sgd"));
  const int64_t id = 1;
  EXPECT_EQ(f->ApplyGradients(&id, 1, grad).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(f->rows(), 0);
}

TEST(SparseTable, BadSpecsAreRefusedNamingTheField) {
  Status s = SparseTable::Create(Spec("emb", 0), Opt("sgd")).status();
  EXPECT_NE(s.message().find("dim must be in [1, 4096]"), std::string::npos) << s;
  s = SparseTable::Create(Spec("emb", 4, InitKind::kGlorotUniform), Opt("sgd")).status();
  EXPECT_NE(s.message().find("glorot_uniform"), std::string::npos) << s;
  s = SparseTable::Create(Spec("emb", 4), Opt("rmsprop")).status();
  EXPECT_NE(s.message().find("sparse table 'emb'"), std::string::npos) << s;
}

// --- Snapshots and memory ------------------------------------------------------

TEST(SparseTable, ExportAndImportRoundTripBitForBitWithSlots) {
  auto a = Make(Spec("emb", 5), Opt("adam"));
  std::mt19937_64 rng(3);
  std::vector<int64_t> ids;
  for (int i = 0; i < 70000; ++i) ids.push_back(static_cast<int64_t>(rng()));  // more than one block of records
  std::vector<float> grads(ids.size() * 5);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i % 13) - 6.0f;
  ASSERT_TRUE(a->ApplyGradients(ids.data(), ids.size(), grads.data()).ok());
  const SparseRows rows = a->Export();
  ASSERT_EQ(rows.size(), ids.size());
  EXPECT_TRUE(std::is_sorted(rows.ids.begin(), rows.ids.end()));
  auto b = Make(Spec("emb", 5), Opt("adam"));
  ASSERT_TRUE(b->Import(rows).ok());
  const SparseRows again = b->Export();
  EXPECT_EQ(again.ids, rows.ids);
  EXPECT_EQ(again.values, rows.values);
  EXPECT_EQ(again.slots, rows.slots);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(PullOne(*b, ids[i]), PullOne(*a, ids[i]));
  // A mismatched import changes nothing.
  SparseRows wrong = rows;
  wrong.slots.pop_back();
  EXPECT_EQ(b->Import(wrong).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b->rows(), static_cast<int64_t>(ids.size()));
  // Nor does one whose last row repeats an id or names the reserved id
  // (found only as the rows go in).
  SparseRows repeated = rows;
  repeated.ids.back() = repeated.ids.front();
  EXPECT_EQ(b->Import(repeated).code(), StatusCode::kInvalidArgument);
  SparseRows reserved = rows;
  reserved.ids.back() = kReservedSparseId;
  EXPECT_EQ(b->Import(reserved).code(), StatusCode::kInvalidArgument);
  const SparseRows after = b->Export();
  EXPECT_EQ(after.ids, rows.ids);
  EXPECT_EQ(after.values, rows.values);
  EXPECT_EQ(after.slots, rows.slots);
}

// A table of `n` Adagrad rows of dim 3 (more than a few cut chunks).
std::unique_ptr<SparseTable> TableOfRows(int n, std::vector<int64_t>* ids) {
  auto t = Make(Spec("emb", 3), Opt("adagrad"));
  std::mt19937_64 rng(11);
  ids->clear();
  for (int i = 0; i < n; ++i) ids->push_back(static_cast<int64_t>(rng() >> 1));
  std::vector<float> grads(ids->size() * 3, 0.25f);
  EXPECT_TRUE(t->ApplyGradients(ids->data(), ids->size(), grads.data()).ok());
  return t;
}

void Push(SparseTable* t, const std::vector<int64_t>& ids, float g) {
  std::vector<float> grads(ids.size() * t->spec().dim, g);
  ASSERT_TRUE(t->ApplyGradients(ids.data(), ids.size(), grads.data()).ok());
}

void ExpectSameRows(const SparseRows& got, const SparseRows& want) {
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.values, want.values);
  EXPECT_EQ(got.slots, want.slots);
}

TEST(SparseCut, RowsUpdatedBeforeTheCopyComeOutAsOfTheCutAndEachIsSavedOnce) {
  std::vector<int64_t> ids;
  const int n = 3 * SparseTable::kCutChunkRows + 100;  // the last chunk is partial
  auto t = TableOfRows(n, &ids);
  const SparseRows before = t->Export();
  const SparseTable::Records cut = t->CopyRecords();
  EXPECT_EQ(cut.rows, static_cast<uint32_t>(n));
  EXPECT_EQ(t->records_saved_on_write(), 0u);
  // Old rows in every chunk (the first and the last row among them), some
  // of them twice, and rows new since the cut.
  const std::vector<int64_t> old_rows = {ids[0], ids[1], ids[5000], ids[9000], ids[n - 1]};
  Push(t.get(), old_rows, 1.0f);
  Push(t.get(), {ids[0], ids[n - 1], 42, 43}, -2.0f);
  EXPECT_EQ(t->records_saved_on_write(), old_rows.size());  // once per row, not per update
  ExpectSameRows(t->SortRecords(cut), before);
  // The table itself moved on, and a second sort of the same cut is the same.
  const SparseRows after = t->Export();
  EXPECT_EQ(after.size(), before.size() + 2);
  EXPECT_NE(after.values, before.values);
  ExpectSameRows(t->SortRecords(cut), before);
  // Once copied, a cut saves nothing more.
  Push(t.get(), {ids[2]}, 1.0f);
  EXPECT_EQ(t->records_saved_on_write(), old_rows.size());
}

TEST(SparseCut, ASecondCutWhileOneIsPendingGivesEachItsOwnMoment) {
  std::vector<int64_t> ids;
  auto t = TableOfRows(2 * SparseTable::kCutChunkRows + 7, &ids);
  const SparseRows at_first = t->Export();
  const SparseTable::Records first = t->CopyRecords();
  Push(t.get(), {ids[3], ids[4100]}, 1.0f);  // saved by the first cut
  const SparseRows at_second = t->Export();  // a cut of its own, finished at once
  const SparseTable::Records second = t->CopyRecords();
  Push(t.get(), {ids[3], ids[8000], 77}, 1.0f);  // saved by the second cut only
  ExpectSameRows(t->SortRecords(second), at_second);
  ExpectSameRows(t->SortRecords(first), at_first);
}

TEST(SparseCut, AnImportOrADroppedCutLeavesThePendingCopyIntact) {
  std::vector<int64_t> ids;
  auto t = TableOfRows(SparseTable::kCutChunkRows + 1, &ids);
  const SparseRows at_cut = t->Export();
  const SparseTable::Records cut = t->CopyRecords();
  std::vector<int64_t> other;
  auto u = TableOfRows(10, &other);
  Push(u.get(), other, 3.0f);
  const SparseRows imported = u->Export();
  ASSERT_TRUE(t->Import(imported).ok());
  Push(t.get(), {other[0]}, 1.0f);
  ExpectSameRows(t->SortRecords(cut), at_cut);
  // A cut dropped before its copy stops saving rows with it.
  const uint64_t saved = t->records_saved_on_write();
  { const SparseTable::Records dropped = t->CopyRecords(); }
  Push(t.get(), {other[1]}, 1.0f);
  EXPECT_EQ(t->records_saved_on_write(), saved);
  EXPECT_EQ(t->Export().size(), imported.size());
}

// Pushes and cuts from two threads (run under TSan too): every cut equals a
// replay of the pushes that came before it. Each push bumps row 0 by
// exactly 1 (SGD, rate 1, zeros init), so a cut's row 0 says how many.
TEST(SparseCut, CutsTakenWhilePushesRunEqualAReplayOfThePushesBeforeThem) {
  SparseTableSpec spec = Spec("emb", 4, InitKind::kZeros);
  const int kPushes = 300, kIds = 256, kVocab = 5 * SparseTable::kCutChunkRows;
  std::vector<std::vector<int64_t>> pushes(kPushes);
  std::mt19937_64 rng(5);
  for (auto& p : pushes) {
    std::set<int64_t> unique = {0};
    while (unique.size() < static_cast<size_t>(kIds)) unique.insert(1 + static_cast<int64_t>(rng() % kVocab));
    p.assign(unique.begin(), unique.end());
  }
  auto t = Make(spec, Opt("sgd", 1.0));
  for (int64_t first = 1; first <= kVocab; first += 1024) {  // every row exists before the first cut
    std::vector<int64_t> warm;
    for (int64_t id = first; id < first + 1024 && id <= kVocab; ++id) warm.push_back(id);
    Push(t.get(), warm, 0.0f);
  }
  std::thread pusher([&] {
    for (const auto& p : pushes) Push(t.get(), p, -1.0f);
  });
  std::vector<SparseRows> cuts;
  for (int c = 0; c < 6; ++c) {
    const SparseTable::Records r = t->CopyRecords();
    cuts.push_back(t->SortRecords(r));
  }
  pusher.join();
  int64_t replayed = 0;
  auto replay = Make(spec, Opt("sgd", 1.0));
  for (int64_t first = 1; first <= kVocab; first += 1024) {
    std::vector<int64_t> warm;
    for (int64_t id = first; id < first + 1024 && id <= kVocab; ++id) warm.push_back(id);
    Push(replay.get(), warm, 0.0f);
  }
  for (const SparseRows& cut : cuts) {
    const auto zero = std::lower_bound(cut.ids.begin(), cut.ids.end(), 0);
    const int64_t count =
        zero != cut.ids.end() && *zero == 0 ? static_cast<int64_t>(cut.values[(zero - cut.ids.begin()) * 4]) : 0;
    ASSERT_GE(count, replayed);
    while (replayed < count) Push(replay.get(), pushes[replayed++], -1.0f);
    const SparseRows want = replay->Export();
    ASSERT_EQ(cut.ids, want.ids) << "after " << count << " pushes";
    ASSERT_EQ(cut.values, want.values) << "after " << count << " pushes";
  }
  RecordProperty("rows_saved_on_write", std::to_string(t->records_saved_on_write()));
}

TEST(SparseTable, AMillionAdagradRowsTakeAtMostOneAndAHalfTimesTheirPayload) {
  auto t = Make(Spec("emb", 16), Opt("adagrad"));
  const int n = 1 << 20;
  std::vector<int64_t> ids(4096);
  std::vector<float> grads(ids.size() * 16, 0.5f);
  for (int first = 0; first < n; first += 4096) {
    for (int i = 0; i < 4096; ++i) ids[i] = static_cast<int64_t>(first + i) * 2654435761LL;
    ASSERT_TRUE(t->ApplyGradients(ids.data(), ids.size(), grads.data()).ok());
  }
  const SparseTable::Memory m = t->memory();
  EXPECT_EQ(m.payload_bytes, uint64_t{n} * (8 + 16 * 4 + 16 * 4));
  const double overhead = static_cast<double>(m.allocated_bytes) / m.payload_bytes;
  EXPECT_LE(overhead, 1.5) << m.allocated_bytes << " bytes allocated for " << m.payload_bytes << " of payload";
  RecordProperty("allocated_per_payload", std::to_string(overhead));
}

}  // namespace
}  // namespace cairn
