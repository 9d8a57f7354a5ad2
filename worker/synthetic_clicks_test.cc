#include "worker/synthetic_clicks.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/auc.h"

namespace cairn {
namespace {

std::unique_ptr<SyntheticClicks> Make(const SyntheticClicksOptions& options, ClickSplit split = ClickSplit::kTrain) {
  StatusOr<std::unique_ptr<SyntheticClicks>> clicks = SyntheticClicks::Create(options, split);
  EXPECT_TRUE(clicks.ok()) << clicks.status();
  return clicks.ok() ? std::move(clicks).value() : nullptr;
}

ClickBatch ReadAll(const ClickSource& source, int64_t first, int64_t n) {
  ClickBatch batch;
  Status s = source.Read(first, n, &batch);
  EXPECT_TRUE(s.ok()) << s;
  return batch;
}

// Row `row` of `batch` equals row `other` of `expected`.
void ExpectSameRow(const ClickBatch& batch, int64_t row, const ClickBatch& expected, int64_t other) {
  EXPECT_EQ(batch.labels[row], expected.labels[other]) << "row " << row;
  for (int j = 0; j < kClickCounts; ++j) EXPECT_EQ(batch.count(row, j), expected.count(other, j)) << "row " << row;
  for (int s = 0; s < kClickSlots; ++s) EXPECT_EQ(batch.id(row, s), expected.id(other, s)) << "row " << row;
}

SyntheticClicksOptions Rows(int64_t rows, int64_t test_rows = 1000) {
  SyntheticClicksOptions o;
  o.rows = rows;
  o.test_rows = test_rows;
  return o;
}

// 200k train examples of the default options, read once for the
// statistical tests.
const ClickBatch& LargeSample() {
  static const ClickBatch* batch = [] {
    std::unique_ptr<SyntheticClicks> clicks = Make(Rows(200000));
    return new ClickBatch(ReadAll(*clicks, 0, clicks->size()));
  }();
  return *batch;
}

TEST(SyntheticClicks, AnExampleDependsOnlyOnSeedAndIndex) {
  std::unique_ptr<SyntheticClicks> a = Make(Rows(3000)), b = Make(Rows(5000, 77));
  const ClickBatch first = ReadAll(*a, 0, 3000), second = ReadAll(*b, 0, 3000);
  EXPECT_EQ(first.labels, second.labels);
  EXPECT_EQ(first.counts, second.counts);
  EXPECT_EQ(first.ids, second.ids);
  EXPECT_DOUBLE_EQ(a->bias(), b->bias());
}

TEST(SyntheticClicks, ReadAtAnyOffsetEqualsASliceOfALongerRead) {
  std::unique_ptr<SyntheticClicks> clicks = Make(Rows(2000));
  const ClickBatch all = ReadAll(*clicks, 0, 2000);
  const ClickBatch middle = ReadAll(*clicks, 1317, 100);
  ASSERT_EQ(middle.size, 100);
  for (int64_t i = 0; i < 100; ++i) ExpectSameRow(middle, i, all, 1317 + i);
  const ClickBatch last = ReadAll(*clicks, 1999, 1);
  ExpectSameRow(last, 0, all, 1999);
}

TEST(SyntheticClicks, GatherGivesTheRowsOfItsIndices) {
  std::unique_ptr<SyntheticClicks> clicks = Make(Rows(1000));
  const ClickBatch all = ReadAll(*clicks, 0, 1000);
  const std::vector<int64_t> indices = {999, 5, 5, 0, 412};
  ClickBatch gathered;
  ASSERT_TRUE(clicks->Gather(indices, &gathered).ok());
  ASSERT_EQ(gathered.size, 5);
  for (size_t i = 0; i < indices.size(); ++i) ExpectSameRow(gathered, i, all, indices[i]);
}

TEST(SyntheticClicks, ReadsOutsideTheSplitAreOutOfRange) {
  std::unique_ptr<SyntheticClicks> clicks = Make(Rows(100));
  ClickBatch batch;
  EXPECT_EQ(clicks->Read(90, 11, &batch).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(clicks->Read(-1, 2, &batch).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(clicks->Read(0, -1, &batch).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(clicks->Gather(std::vector<int64_t>{3, 100}, &batch).code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(clicks->Read(100, 0, &batch).ok());
  EXPECT_EQ(batch.size, 0);
}

TEST(SyntheticClicks, TestSplitAndOtherSeedsAreOtherExamples) {
  SyntheticClicksOptions o = Rows(1000, 1000);
  const ClickBatch train = ReadAll(*Make(o), 0, 1000);
  const ClickBatch test = ReadAll(*Make(o, ClickSplit::kTest), 0, 1000);
  o.seed = 2;
  const ClickBatch reseeded = ReadAll(*Make(o), 0, 1000);
  EXPECT_NE(train.counts, test.counts);
  EXPECT_NE(train.counts, reseeded.counts);
  EXPECT_NE(train.ids, test.ids);
}

TEST(SyntheticClicks, MissingRatesAreTwentyAndEightPercent) {
  const ClickBatch& b = LargeSample();
  const double counts_missing =
      static_cast<double>(std::count(b.counts.begin(), b.counts.end(), kMissingCount)) / b.counts.size();
  const double ids_missing = static_cast<double>(std::count(b.ids.begin(), b.ids.end(), kMissingId)) / b.ids.size();
  RecordProperty("counts_missing", std::to_string(counts_missing));
  RecordProperty("ids_missing", std::to_string(ids_missing));
  EXPECT_NEAR(counts_missing, 0.20, 0.003);
  EXPECT_NEAR(ids_missing, 0.08, 0.002);
}

TEST(SyntheticClicks, ClickRateIsAQuarter) {
  const ClickBatch& b = LargeSample();
  double clicks = 0;
  for (float label : b.labels) {
    ASSERT_TRUE(label == 0 || label == 1);
    clicks += label;
  }
  RecordProperty("click_rate", std::to_string(clicks / b.size));
  EXPECT_NEAR(clicks / b.size, 0.25, 0.01);
}

TEST(SyntheticClicks, CountsAreHeavyTailedAndNonNegative) {
  const ClickBatch& b = LargeSample();
  int32_t largest = 0;
  int64_t zeros = 0, present = 0;
  for (int32_t c : b.counts) {
    if (c == kMissingCount) continue;
    ASSERT_GE(c, 0);
    ++present;
    zeros += c == 0;
    largest = std::max(largest, c);
  }
  EXPECT_GT(largest, 1000000);  // I5's median is in the thousands, and alpha ~1 tails go far
  EXPECT_GT(zeros, present / 20);
}

// The most frequent id of a slot comes at Zipf's P(rank 1) of the present
// ids, the second at P(rank 2): exponent 1.1 over the slot's vocabulary.
TEST(SyntheticClicks, IdsAreZipfDistributed) {
  const ClickBatch& b = LargeSample();
  const std::vector<int64_t> vocab = CriteoKaggleVocab();
  for (int slot : {2, 9, 6, 0}) {  // vocabularies 10^6, 93145, 12517, 1460
    std::map<int64_t, int64_t> seen;
    for (int64_t i = 0; i < b.size; ++i) seen[b.id(i, slot)] += 1;
    const int64_t present = b.size - seen[kMissingId];
    seen.erase(kMissingId);
    std::vector<int64_t> frequencies;
    for (const auto& [id, n] : seen) frequencies.push_back(n);
    std::sort(frequencies.rbegin(), frequencies.rend());
    const ZipfSampler zipf(vocab[slot], 1.1);
    EXPECT_NEAR(static_cast<double>(frequencies[0]) / present, zipf.Probability(1), 0.05 * zipf.Probability(1))
        << "slot C" << slot + 1;
    EXPECT_NEAR(static_cast<double>(frequencies[1]) / present, zipf.Probability(2), 0.08 * zipf.Probability(2))
        << "slot C" << slot + 1;
  }
}

TEST(SyntheticClicks, IdsStayWithinEachSlotsVocabulary) {
  const ClickBatch& b = LargeSample();
  const std::vector<int64_t> vocab = CriteoKaggleVocab();
  for (int64_t i = 0; i < b.size; ++i) {
    for (int s = 0; s < kClickSlots; ++s) {
      if (b.id(i, s) == kMissingId) continue;
      ASSERT_GE(b.id(i, s), 0);
      ASSERT_LT(b.id(i, s), vocab[s]) << "slot C" << s + 1;
    }
  }
}

// Ranks are permuted over the vocabulary: a 10^8 vocabulary's ids reach
// its top and its most frequent ids are not packed at 0.
TEST(SyntheticClicks, AHundredMillionIdVocabularyIsUsedWhole) {
  SyntheticClicksOptions o = Rows(20000);
  o.vocab.assign(kClickSlots, 100000000);
  std::unique_ptr<SyntheticClicks> clicks = Make(o);
  const ClickBatch b = ReadAll(*clicks, 0, o.rows);
  int64_t largest = 0, below_million = 0, present = 0;
  for (int64_t id : b.ids) {
    if (id == kMissingId) continue;
    ASSERT_GE(id, 0);
    ASSERT_LT(id, 100000000);
    largest = std::max(largest, id);
    below_million += id < 1000000;
    ++present;
  }
  EXPECT_GT(largest, 99000000);
  EXPECT_LT(below_million, present / 10);
}

TEST(SyntheticClicks, TinyVocabulariesWork) {
  SyntheticClicksOptions o = Rows(2000);
  o.vocab.assign(kClickSlots, 1);
  o.vocab[0] = 2;
  const ClickBatch b = ReadAll(*Make(o), 0, o.rows);
  for (int64_t i = 0; i < b.size; ++i) {
    EXPECT_TRUE(b.id(i, 0) == 0 || b.id(i, 0) == 1 || b.id(i, 0) == kMissingId);
    EXPECT_TRUE(b.id(i, 1) == 0 || b.id(i, 1) == kMissingId);
  }
}

TEST(SyntheticClicks, OptionsOutOfRangeAreRefused) {
  auto refused = [](SyntheticClicksOptions o, const std::string& why) {
    StatusOr<std::unique_ptr<SyntheticClicks>> c = SyntheticClicks::Create(o);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(why), std::string::npos) << c.status();
  };
  SyntheticClicksOptions o;
  o.vocab.assign(kClickSlots, 100000000);
  o.vocab[4] = 100000001;
  refused(o, "slot C5");
  o.vocab.assign(25, 10);
  refused(o, "25 sizes");
  o = {};
  o.vocab.assign(kClickSlots, 0);
  refused(o, "slot C1");
  o = {};
  o.zipf_exponent = 0;
  refused(o, "zipf_exponent");
  o = {};
  o.int_missing = 1.5;
  refused(o, "int_missing");
  o = {};
  o.click_rate = 0;
  refused(o, "click_rate");
  o = {};
  o.rows = -1;
  refused(o, "rows");
}

TEST(SyntheticClicks, CriteoVocabularyIsClippedAsAsked) {
  const std::vector<int64_t> clipped = CriteoKaggleVocab();
  ASSERT_EQ(clipped.size(), kClickSlots);
  EXPECT_EQ(clipped[2], 1000000);  // C3: 10,131,227
  EXPECT_EQ(clipped[8], 10);       // C9: 3
  EXPECT_EQ(clipped[0], 1460);
  const std::vector<int64_t> whole = CriteoKaggleVocab(1, 100000000);
  int64_t sum = 0;
  for (int64_t v : whole) sum += v;
  EXPECT_EQ(sum, 33762577);
}

// The planted probabilities separate clicks well but not perfectly, and
// without the interactions they separate them measurably worse: a model
// with embeddings has something to find that logistic regression cannot.
TEST(SyntheticClicks, BayesAucIsACeilingTheInteractionsRaise) {
  SyntheticClicksOptions o = Rows(1000, 100000);
  StatusOr<double> bayes = BayesAuc(o);
  ASSERT_TRUE(bayes.ok()) << bayes.status();
  std::unique_ptr<SyntheticClicks> test = Make(o, ClickSplit::kTest);
  ClickBatch batch;
  PlantedLogits logits;
  ASSERT_TRUE(test->ReadWithLogits(0, test->size(), &batch, &logits).ok());
  std::vector<float> total(test->size());
  for (int64_t i = 0; i < test->size(); ++i) total[i] = logits.main_effects[i] + logits.interactions[i];
  const double main_only = Auc(logits.main_effects, batch.labels);
  RecordProperty("bayes_auc", std::to_string(*bayes));
  RecordProperty("auc_without_interactions", std::to_string(main_only));
  EXPECT_DOUBLE_EQ(Auc(total, batch.labels), *bayes);
  EXPECT_GT(*bayes, 0.84);  // 0.882 measured
  EXPECT_LT(*bayes, 0.91);
  EXPECT_LT(main_only, *bayes - 0.02);  // 0.844 measured
  EXPECT_GT(main_only, 0.78);
}

// Labels are drawn from the planted probabilities: within each decile of
// probability the click rate is that decile's mean probability.
TEST(SyntheticClicks, LabelsFollowThePlantedProbabilities) {
  std::unique_ptr<SyntheticClicks> clicks = Make(Rows(100000));
  ClickBatch batch;
  PlantedLogits logits;
  ASSERT_TRUE(clicks->ReadWithLogits(0, clicks->size(), &batch, &logits).ok());
  std::vector<std::pair<double, float>> scored;
  for (int64_t i = 0; i < batch.size; ++i) {
    const double p = 1 / (1 + std::exp(-(static_cast<double>(logits.main_effects[i]) + logits.interactions[i])));
    scored.push_back({p, batch.labels[i]});
  }
  std::sort(scored.begin(), scored.end());
  const size_t decile = scored.size() / 10;
  for (size_t d = 0; d < 10; ++d) {
    double p = 0, clicked = 0;
    for (size_t i = d * decile; i < (d + 1) * decile; ++i) {
      p += scored[i].first;
      clicked += scored[i].second;
    }
    p /= decile;
    EXPECT_NEAR(clicked / decile, p, 4 * std::sqrt(p * (1 - p) / decile) + 1e-3) << "decile " << d;
  }
}

// Loose enough for a loaded machine; the figure is in the test's XML
// properties (--gtest_output=xml) and in its output.
TEST(SyntheticClicks, ReadStreamsHundredsOfThousandsOfExamplesASecond) {
  std::unique_ptr<SyntheticClicks> clicks = Make(Rows(300000));
  ClickBatch batch;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < clicks->size(); first += 4096) {
    ASSERT_TRUE(clicks->Read(first, std::min<int64_t>(4096, clicks->size() - first), &batch).ok());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double rate = clicks->size() / seconds;
  RecordProperty("examples_per_sec", std::to_string(rate));
  std::printf("SyntheticClicks::Read: %.0f examples/s on one thread\n", rate);
  EXPECT_GT(rate, 100000);
}

}  // namespace
}  // namespace cairn
