#include "ps/shard_store.h"

#include <atomic>
#include <algorithm>
#include <thread>

#include <gtest/gtest.h>

namespace cairn {
namespace {

VariableSpec Spec(const std::string& name, Shape shape, InitKind kind = InitKind::kZeros, bool trainable = true) {
  VariableSpec s{name, std::move(shape), DType::kFloat32, {}, trainable};
  s.init.kind = kind;
  s.init.value = 2.0;
  s.init.seed = 3;
  return s;
}

OptimizerSpec Sgd(double lr) {
  OptimizerSpec o;
  o.learning_rate = lr;
  return o;
}

TEST(ShardStore, CreatedShardHoldsItsRowsOfTheInitialValues) {
  ShardStore store;
  VariableSpec spec = Spec("w", {6, 2}, InitKind::kGlorotUniform);
  ASSERT_TRUE(store.Create(ShardDecl{spec, 2, 5, Sgd(0.1)}).ok());
  ShardInfo info;
  StatusOr<Tensor> t = store.Read("w", &info);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->shape(), (Shape{3, 2}));
  Tensor whole(DType::kFloat32, {6, 2});
  InitializeRows(spec, 0, &whole);
  EXPECT_TRUE(t->BitEqual(whole.SliceRows(2, 5).Clone()));
  EXPECT_EQ(info.row_begin, 2);
}

TEST(ShardStore, CreatingTheSameShardTwiceKeepsItsValues) {
  ShardStore store;
  VariableSpec spec = Spec("w", {4}, InitKind::kConstant);
  ASSERT_TRUE(store.Create(ShardDecl{spec, 0, 4, Sgd(1.0)}).ok());
  ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({4}, {1, 1, 1, 1})).ok());
  ASSERT_TRUE(store.Create(ShardDecl{spec, 0, 4, Sgd(1.0)}).ok());
  EXPECT_FLOAT_EQ(store.Read("w")->data<float>()[0], 1.0f);
  EXPECT_EQ(store.size(), 1u);
}

TEST(ShardStore, ConflictingSpecIsAnErrorNamingBoth) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {4}), 0, 4, Sgd(0.1)}).ok());
  Status s = store.Create(ShardDecl{Spec("w", {5}), 0, 5, Sgd(0.1)});
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(s.message().find("[4]"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[5]"), std::string::npos) << s;
}

TEST(ShardStore, RowRangeOutsideTheVariableIsRejected) {
  ShardStore store;
  EXPECT_EQ(store.Create(ShardDecl{Spec("w", {4, 2}), 2, 5, Sgd(0.1)}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Create(ShardDecl{Spec("w", {4, 2}), 3, 2, Sgd(0.1)}).code(), StatusCode::kInvalidArgument);
}

TEST(ShardStore, UnknownOptimizerIsRejected) {
  ShardStore store;
  OptimizerSpec o;
  o.kind = "rmsprop-ish";
  EXPECT_EQ(store.Create(ShardDecl{Spec("w", {4}), 0, 4, o}).code(), StatusCode::kInvalidArgument);
}

TEST(ShardStore, SgdSubtractsLearningRateTimesGradient) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {3}, InitKind::kConstant), 0, 3, Sgd(0.5)}).ok());
  ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 2, -4})).ok());
  Tensor t = *store.Read("w");
  EXPECT_FLOAT_EQ(t.data<float>()[0], 1.5f);
  EXPECT_FLOAT_EQ(t.data<float>()[1], 1.0f);
  EXPECT_FLOAT_EQ(t.data<float>()[2], 4.0f);
}

TEST(ShardStore, GradientOfWrongShapeOrForNonTrainableIsRejected) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {3}), 0, 3, Sgd(0.5)}).ok());
  ASSERT_TRUE(store.Create(ShardDecl{Spec("stats", {3}, InitKind::kZeros, false), 0, 3, Sgd(0.5)}).ok());
  EXPECT_EQ(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({2}, {1, 2})).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Apply("stats", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 2, 3})).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(store.Apply("nope", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 2, 3})).code(), StatusCode::kNotFound);
}

TEST(ShardStore, ConcurrentUpdatesAreEachAppliedOnce) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {64}), 0, 64, Sgd(1.0)}).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      Tensor g(DType::kFloat32, {64});
      g.flat().setConstant(1.0f);
      for (int i = 0; i < 250; ++i) ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, g).ok());
    });
  }
  for (auto& t : threads) t.join();
  Tensor w = *store.Read("w");
  for (int i = 0; i < 64; ++i) EXPECT_FLOAT_EQ(w.data<float>()[i], -1000.0f);
}

// ReadShared lends the shard's buffer: every kind of update then writes the
// shard's new values elsewhere, and what the reader holds stays as it was.
TEST(ShardStore, SharedReadsNeverChangeUnderTheReader) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {3}, InitKind::kConstant), 0, 3, Sgd(1.0)}).ok());
  VariableSpec step{"step", {}, DType::kInt64, {}, false};
  ASSERT_TRUE(store.Create(ShardDecl{step, 0, 1, Sgd(1.0)}).ok());
  const Tensor initial = *store.ReadShared("w");
  ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 1, 1})).ok());
  const Tensor after_gradient = *store.ReadShared("w");
  ASSERT_TRUE(store.Apply("w", UpdateKind::kAssign, Tensor::FromVector({3}, {7, 8, 9})).ok());
  const Tensor after_assign = *store.ReadShared("w");
  ASSERT_TRUE(store.Apply("w", UpdateKind::kAssignAdd, Tensor::FromVector({3}, {1, 1, 1})).ok());
  ShardCopy restored = *store.Describe("w");
  restored.values = Tensor::FromVector({3}, {5, 5, 5});
  const Tensor before_import = *store.ReadShared("w");
  ASSERT_TRUE(store.Import({restored}).ok());
  const Tensor step_before = *store.ReadShared("step");
  ASSERT_TRUE(store.CountStep("step"));

  EXPECT_TRUE(initial.BitEqual(Tensor::FromVector({3}, {2, 2, 2})));
  EXPECT_TRUE(after_gradient.BitEqual(Tensor::FromVector({3}, {1, 1, 1})));
  EXPECT_TRUE(after_assign.BitEqual(Tensor::FromVector({3}, {7, 8, 9})));
  EXPECT_TRUE(before_import.BitEqual(Tensor::FromVector({3}, {8, 9, 10})));
  EXPECT_TRUE(store.ReadShared("w")->BitEqual(Tensor::FromVector({3}, {5, 5, 5})));
  EXPECT_EQ(step_before.data<int64_t>()[0], 0);
  EXPECT_EQ(store.ReadShared("step")->data<int64_t>()[0], 1);
}

// The copy on write is only for buffers still lent: once the reader has let
// go, the next update writes in place, as without ReadShared.
TEST(ShardStore, UpdatesAfterTheSharedReaderIsGoneWriteInPlace) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {3}, InitKind::kConstant), 0, 3, Sgd(1.0)}).ok());
  const void* buffer = store.ReadShared("w")->raw();
  ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, Tensor::FromVector({3}, {1, 1, 1})).ok());
  Tensor t = *store.ReadShared("w");
  EXPECT_EQ(t.raw(), buffer);
  EXPECT_FLOAT_EQ(t.data<float>()[0], 1.0f);
}

// Readers on other threads hold shared values while updates go on: each
// reader sees one whole update (every element alike), and the same values for
// as long as it holds them.
TEST(ShardStore, SharedReadsAreWholeUpdatesWhileUpdatesRun) {
  ShardStore store;
  ASSERT_TRUE(store.Create(ShardDecl{Spec("w", {1 << 16}), 0, 1 << 16, Sgd(1.0)}).ok());
  std::atomic<bool> done{false};
  std::thread writer([&] {
    Tensor g(DType::kFloat32, {1 << 16});
    g.flat().setConstant(1.0f);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(store.Apply("w", UpdateKind::kGradient, g).ok());
    done = true;
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done) {
        Tensor t = *store.ReadShared("w");
        const float first = t.data<float>()[0];
        for (int pass = 0; pass < 2; ++pass) {
          for (int64_t i = 0; i < t.num_elements(); ++i) ASSERT_EQ(t.data<float>()[i], first) << i;
        }
      }
    });
  }
  writer.join();
  for (auto& t : readers) t.join();
  EXPECT_FLOAT_EQ(store.ReadShared("w")->data<float>()[0], -1000.0f);
}

OptimizerSpec Adam(double lr) {
  OptimizerSpec o;
  o.kind = "adam";  // per-element slots m, v and scalar beta powers
  o.learning_rate = lr;
  return o;
}

// A store with two Adam shards of different shapes, and a gradient step for each.
void MakeAdamStore(ShardStore* store) {
  ASSERT_TRUE(store->Create(ShardDecl{Spec("a", {16, 4}, InitKind::kGlorotUniform), 0, 16, Adam(0.1)}).ok());
  ASSERT_TRUE(store->Create(ShardDecl{Spec("b", {10}, InitKind::kConstant), 2, 9, Adam(0.1)}).ok());
}
void Step(ShardStore* store, float g) {
  Tensor ga(DType::kFloat32, {16, 4}), gb(DType::kFloat32, {7});
  ga.flat().setConstant(g);
  gb.flat().setConstant(-g);
  ASSERT_TRUE(store->Apply("a", UpdateKind::kGradient, ga).ok());
  ASSERT_TRUE(store->Apply("b", UpdateKind::kGradient, gb).ok());
}

void ExpectSameCopies(const std::vector<ShardCopy>& got, const std::vector<ShardCopy>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].info.spec.name, want[i].info.spec.name);
    EXPECT_TRUE(got[i].values.BitEqual(want[i].values)) << got[i].info.spec.name;
    ASSERT_EQ(got[i].slots.size(), want[i].slots.size());
    for (size_t k = 0; k < got[i].slots.size(); ++k) {
      EXPECT_TRUE(got[i].slots[k].BitEqual(want[i].slots[k])) << got[i].info.spec.name << " slot " << k;
    }
  }
}

std::vector<const void*> Buffers(const std::vector<ShardCopy>& copies) {
  std::vector<const void*> out;
  for (const ShardCopy& c : copies) {
    out.push_back(c.values.raw());
    for (const Tensor& s : c.slots) out.push_back(s.raw());
  }
  return out;
}

TEST(ShardStore, ExportIntoReusedBuffersCopiesTheCurrentValuesBitForBit) {
  ShardStore store;
  MakeAdamStore(&store);
  Step(&store, 0.5f);
  std::vector<ShardCopy> first = store.Export({});
  const std::vector<ShardCopy> first_held = store.Export({});  // fresh buffers: what `first` was
  const std::vector<const void*> first_buffers = Buffers(first);
  Step(&store, -0.25f);  // values and every slot change

  std::vector<ShardCopy> second = store.Export({}, {std::move(first)});
  ExpectSameCopies(second, store.Export({}));
  EXPECT_EQ(Buffers(second), first_buffers) << "every buffer fits and is free, so every one is reused";
  EXPECT_FALSE(second[0].values.BitEqual(first_held[0].values)) << "the step did not change 'a'";
}

TEST(ShardStore, ExportNeverOverwritesACopyStillInUse) {
  ShardStore store;
  MakeAdamStore(&store);
  std::vector<ShardCopy> first = store.Export({});
  // Someone still reads the first copy of 'a' (a view sharing its buffer).
  const Tensor in_use = first[0].values;
  const Tensor in_use_was = in_use.Clone();
  const void* m_buffer = first[0].slots[0].raw();
  Step(&store, 0.5f);

  std::vector<ShardCopy> second = store.Export({}, {std::move(first)});
  ExpectSameCopies(second, store.Export({}));
  EXPECT_NE(second[0].values.raw(), in_use.raw());
  EXPECT_TRUE(in_use.BitEqual(in_use_was)) << "a copy in use changed under its user";
  const std::vector<const void*> reused = Buffers(second);
  EXPECT_EQ(std::count(reused.begin(), reused.end(), m_buffer), 1) << "the free buffers beside it are still reused";
}

TEST(ShardStore, ExportAllocatesWhatReusedCopiesDoNotFit) {
  ShardStore store;
  MakeAdamStore(&store);
  ShardStore other;  // same names, other shapes
  ASSERT_TRUE(other.Create(ShardDecl{Spec("a", {8, 4}), 0, 8, Adam(0.1)}).ok());
  ASSERT_TRUE(other.Create(ShardDecl{Spec("b", {10}, InitKind::kConstant, false), 0, 10, Adam(0.1)}).ok());
  std::vector<ShardCopy> misfits = other.Export({});
  Step(&store, 0.5f);

  std::vector<ShardCopy> only_b = store.Export({"b"}, {std::move(misfits)});
  ASSERT_EQ(only_b.size(), 1u);
  ExpectSameCopies(only_b, store.Export({"b"}));
  // A subset handed back is reused where it fits; the rest is allocated.
  std::vector<ShardCopy> all = store.Export({}, {std::move(only_b)});
  ExpectSameCopies(all, store.Export({}));
}

// Fills every part of `c` with `v` (a restore's stand-in).
Status FillWith(ShardCopy& c, float v) {
  c.values.flat().setConstant(v);
  for (Tensor& s : c.slots) s.flat().setConstant(v);
  return Status::OK();
}

TEST(ShardStore, FillInitialWritesInPlaceIntoShardsNeverUpdated) {
  ShardStore store;
  MakeAdamStore(&store);
  const void* a_buffer = store.ReadShared("a")->raw();  // dropped at once: no reader holds it
  Tensor gb(DType::kFloat32, {7});
  gb.flat().setConstant(1.0f);
  ASSERT_TRUE(store.Apply("b", UpdateKind::kGradient, gb).ok());  // 'b' is no longer initial
  const std::vector<ShardCopy> b_before = store.Export({"b"});

  StatusOr<std::vector<std::string>> filled =
      store.FillInitial({"a", "b", "elsewhere"}, /*with_slots=*/true, [](ShardCopy& c) { return FillWith(c, 7.0f); });
  ASSERT_TRUE(filled.ok()) << filled.status();
  EXPECT_EQ(*filled, (std::vector<std::string>{"a"}));
  ExpectSameCopies(store.Export({"b"}), b_before);

  // Until the restore is finished, 'a' takes no reads or updates.
  Tensor ga(DType::kFloat32, {16, 4});
  for (const Status& s : {store.ReadShared("a").status(), store.Read("a").status(),
                          store.CheckUpdate("a", UpdateKind::kGradient, 0, ga),
                          store.Apply("a", UpdateKind::kGradient, ga)}) {
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(s.message().find("'a' is being restored"), std::string::npos) << s;
  }
  EXPECT_TRUE(store.ReadShared("b").ok()) << "only the filled shard is fenced";

  store.FinishRestore({"a"}, /*keep=*/true);
  StatusOr<Tensor> a = store.ReadShared("a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->data<float>()[0], 7.0f);
  EXPECT_EQ(a->raw(), a_buffer) << "filled in place, not into a new buffer";
  // Held in a local: a range-for over a member of Export's temporary would
  // iterate a destroyed vector (the temporary dies before the loop body).
  const std::vector<ShardCopy> exported = store.Export({"a"});
  for (const Tensor& slot : exported[0].slots) EXPECT_EQ(slot.data<float>()[0], 7.0f);
  // Restored, 'a' is no longer initial: a second restore must stage it.
  filled = store.FillInitial({"a"}, true, [](ShardCopy& c) { return FillWith(c, 8.0f); });
  ASSERT_TRUE(filled.ok());
  EXPECT_TRUE(filled->empty());
}

TEST(ShardStore, AFailedFillLeavesEveryShardWithTheBytesCreateGaveIt) {
  ShardStore store, fresh;
  MakeAdamStore(&store);
  MakeAdamStore(&fresh);
  const Tensor reader = *store.ReadShared("a");  // a pull still writing its reply
  int calls = 0;
  StatusOr<std::vector<std::string>> filled = store.FillInitial({"a", "b"}, true, [&](ShardCopy& c) {
    (void)FillWith(c, 9.0f);  // half a restore, then the read fails
    return ++calls == 2 ? DataLoss("chunk 0 fails its checksum") : Status::OK();
  });
  EXPECT_EQ(filled.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(calls, 2);
  ExpectSameCopies(store.Export({}), fresh.Export({}));
  EXPECT_TRUE(reader.BitEqual(*fresh.Read("a"))) << "a value the reader holds changed under it";
  EXPECT_TRUE(store.ReadShared("a").ok()) << "a failed fill leaves nothing fenced";
  // Both are initial again: a retried restore fills them in place.
  filled = store.FillInitial({"a", "b"}, true, [](ShardCopy& c) { return FillWith(c, 1.0f); });
  ASSERT_TRUE(filled.ok());
  EXPECT_EQ(filled->size(), 2u);
}

TEST(ShardStore, AFillThatIsNotKeptIsUndoneAndAFillWithoutSlotsKeepsThem) {
  ShardStore store, fresh;
  MakeAdamStore(&store);
  MakeAdamStore(&fresh);
  ASSERT_TRUE(store.FillInitial({"a"}, /*with_slots=*/false, [](ShardCopy& c) {
                     EXPECT_TRUE(c.slots.empty());
                     return FillWith(c, 5.0f);
                   }).ok());
  const std::vector<ShardCopy> a = store.Export({"a"});
  EXPECT_EQ(a[0].values.data<float>()[0], 5.0f);
  const std::vector<ShardCopy> want = fresh.Export({"a"});
  ASSERT_EQ(a[0].slots.size(), want[0].slots.size());
  for (size_t k = 0; k < a[0].slots.size(); ++k) {
    EXPECT_TRUE(a[0].slots[k].BitEqual(want[0].slots[k])) << "slot " << k << " changed without with_slots";
  }
  store.FinishRestore({"a", "elsewhere"}, /*keep=*/false);
  ExpectSameCopies(store.Export({}), fresh.Export({}));
  EXPECT_TRUE(store.ReadShared("a").ok());
}

}  // namespace
}  // namespace cairn

namespace cairn {
namespace {

SparseTableDecl SparseDecl(const std::string& name, int32_t dim) {
  SparseTableDecl d;
  d.spec.name = name;
  d.spec.dim = dim;
  d.spec.init.kind = InitKind::kUniform;
  d.optimizer.kind = "adam";
  d.optimizer.learning_rate = 0.1;
  return d;
}

TEST(ShardStoreSparse, ExportCutsTheNamedTablesAndFinishGivesTheirSortedRows) {
  ShardStore store;
  ASSERT_TRUE(store.CreateSparse(SparseDecl("emb/b", 3)).ok());
  ASSERT_TRUE(store.CreateSparse(SparseDecl("emb/a", 2)).ok());
  const std::vector<int64_t> ids = {9, -4, 1LL << 45, 0};
  const std::vector<float> grads(4 * 3, 0.5f);
  for (const char* name : {"emb/a", "emb/b"}) {
    SparseTable* t = *store.FindSparse(name);
    ASSERT_TRUE(t->ApplyGradients(ids.data(), ids.size(), grads.data()).ok());
  }
  std::vector<SparseCut> cuts;
  store.Export({}, {}, &cuts);
  ASSERT_EQ(cuts.size(), 2u);
  EXPECT_EQ(cuts[0].table->spec().name, "emb/a");
  EXPECT_EQ(cuts[0].rows(), 4);
  EXPECT_EQ(cuts[0].bytes(), 4u * (8 + 2 * 4 * 3 + 2 * 4));  // values, m, v, two per-row beta powers
  for (const SparseCut& cut : cuts) {
    const SparseCopy copy = cut.Finish();
    const SparseRows want = cut.table->Export();
    EXPECT_EQ(copy.rows.ids, (std::vector<int64_t>{-4, 0, 9, 1LL << 45}));
    EXPECT_EQ(copy.rows.ids, want.ids);
    EXPECT_EQ(copy.rows.values, want.values);
    EXPECT_EQ(copy.rows.slots, want.slots);
    EXPECT_EQ(copy.slot_defs, cut.table->slots());
  }
  // Only the named ones; a dense name or an unknown one is skipped.
  store.Export({"emb/b", "nope"}, {}, &cuts);
  ASSERT_EQ(cuts.size(), 1u);
  EXPECT_EQ(cuts[0].table->spec().name, "emb/b");
}

TEST(ShardStoreSparse, ImportSparseChecksEveryTableBeforeReplacingAny) {
  ShardStore store;
  ASSERT_TRUE(store.CreateSparse(SparseDecl("emb/a", 2)).ok());
  ASSERT_TRUE(store.CreateSparse(SparseDecl("emb/b", 3)).ok());
  std::vector<SparseCut> cuts;
  const std::vector<int64_t> ids = {5, 7};
  const std::vector<float> grads(2 * 3, 1.0f);
  ASSERT_TRUE((*store.FindSparse("emb/a"))->ApplyGradients(ids.data(), 2, grads.data()).ok());
  store.Export({}, {}, &cuts);
  SparseCopy a = cuts[0].Finish();
  SparseCopy b = cuts[1].Finish();
  b.rows.dim = 2;  // does not fit emb/b
  a.rows = SparseRows{2, {}, {}, std::vector<std::vector<float>>(4)};
  EXPECT_EQ(store.ImportSparse({a, b}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*store.FindSparse("emb/a"))->rows(), 2) << "a failed import replaced a table";
  EXPECT_TRUE(store.ImportSparse({a}).ok());
  EXPECT_EQ((*store.FindSparse("emb/a"))->rows(), 0);
}

}  // namespace
}  // namespace cairn
