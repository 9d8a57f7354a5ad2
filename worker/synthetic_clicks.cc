#include "worker/synthetic_clicks.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "worker/auc.h"

namespace cairn {
namespace {

// The distinct values of each categorical column C1..C26 of the Criteo
// Kaggle Display Advertising Challenge train set (45,840,617 rows), as
// facebookresearch/dlrm reports them for --data-set=kaggle (its ln_emb;
// 33,762,577 in all), the figures most embedding papers size tables by.
constexpr std::array<int64_t, kClickSlots> kCriteoKaggleCardinalities = {
    1460, 583,   10131227, 2202608, 305, 24, 12517, 633,     3,  93145, 5683,   8351593, 3194,
    27,   14992, 5461306,  10,      5652, 2173, 4,   7046547, 18, 15,    286181, 105,     142572};

constexpr int64_t kMaxVocab = 100000000;
constexpr int64_t kMaxRows = int64_t{1} << 61;
constexpr uint64_t kTestBase = uint64_t{1} << 62;
constexpr uint64_t kCalibrationBase = kTestBase + (uint64_t{1} << 61);
constexpr int kCalibrationExamples = 1 << 15;
constexpr int32_t kMaxCount = 1000000000;

// The planted model's scales, tuned by measurement (seeds 1-3, 10^5 test
// examples): the logit's variance is ~4.5 (the main effects ~3.9, the
// interactions ~0.9), which puts the Bayes AUC at 0.87-0.89 and the AUC of
// the main effects alone ~0.04 below it, as on Criteo, where models with
// embeddings gain a few points of AUC over logistic regression. The count
// terms are kept small: log1p of a Lomax count has an exponential tail, so
// a large beta lets one count swing the logit by 10.
constexpr float kMinSlotScale = 0.2f, kMaxSlotScale = 0.5f;
constexpr float kBetaScale = 0.15f, kCountMissingScale = 0.15f;
constexpr float kInteractionScale = 0.6f;

// Lomax parameters of I1..I13, (median, alpha): shaped after Criteo's
// counts (mostly small, I5 in the thousands, a few with tails to 10^5 and
// beyond), not fitted to them.
constexpr std::array<std::pair<double, double>, kClickCounts> kCountShapes = {{
    {1, 1.3}, {2, 1.1}, {6, 1.2}, {4, 2.0}, {2800, 1.2}, {30, 1.1}, {3, 1.2},
    {7, 2.0}, {38, 1.3}, {1, 3.0}, {1, 1.5}, {0.5, 1.1}, {4, 1.5}}};

// Key namespaces: each use of the seed hashes under its own tag.
enum Tag : uint64_t { kExampleTag = 1, kPermutationTag, kWeightTag, kScaleTag, kCountTag, kFactorUTag, kFactorVTag };

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// SplitMix64's finalizer: a bijection on 64 bits that mixes every input bit
// into every output bit.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Hash(uint64_t key, uint64_t value) { return Mix(key ^ Mix(value + kGolden)); }
uint64_t Key(uint64_t seed, Tag tag, uint64_t index) { return Hash(Hash(seed, tag), index); }

double Uniform(uint64_t bits) { return static_cast<double>(bits >> 11) * 0x1.0p-53; }

// A standard-normal-like value from 64 hashed bits: the sum of four 16-bit
// uniforms (Irwin-Hall), centred and scaled to variance 1. Bounded by
// +-3.46, which a planted weight is glad to be, and no log or sqrt.
float Normalish(uint64_t h) {
  const uint64_t sum = (h & 0xffff) + ((h >> 16) & 0xffff) + ((h >> 32) & 0xffff) + (h >> 48);
  return static_cast<float>((static_cast<double>(sum) * 0x1.0p-16 - 2.0) * 1.7320508075688772);
}

// An example's stream of uniforms: SplitMix64 from a state hashed from
// (seed, example), so any example is computed without the ones before it.
class ExampleRng {
 public:
  explicit ExampleRng(uint64_t state) : state_(state) {}
  double operator()() { return Uniform(Mix(state_ += kGolden)); }

 private:
  uint64_t state_;
};

// log1p of the counts most draws give, without a log each.
float Log1pCount(int32_t count) {
  static const std::array<float, 1024> table = [] {
    std::array<float, 1024> t;
    for (size_t k = 0; k < t.size(); ++k) t[k] = static_cast<float>(std::log1p(static_cast<double>(k)));
    return t;
  }();
  return count < 1024 ? table[count] : static_cast<float>(std::log1p(static_cast<double>(count)));
}

float Sigmoid(double x) { return static_cast<float>(1 / (1 + std::exp(-x))); }

// The value an id (or kMissingId) is hashed as.
uint64_t IdKey(int64_t id) { return static_cast<uint64_t>(id); }

Status CheckUnit(double value, double lo, double hi, const char* name) {
  if (value >= lo && value <= hi) return Status::OK();
  return InvalidArgument(std::string("synthetic_clicks: ") + name + " is " + std::to_string(value) + ", not in [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

Status CheckOptions(const SyntheticClicksOptions& o, const std::vector<int64_t>& vocab) {
  if (vocab.size() != kClickSlots) {
    return InvalidArgument("synthetic_clicks: vocab has " + std::to_string(vocab.size()) + " sizes, not " +
                           std::to_string(kClickSlots) + " (or none, for Criteo's)");
  }
  for (int s = 0; s < kClickSlots; ++s) {
    if (vocab[s] < 1 || vocab[s] > kMaxVocab) {
      return InvalidArgument("synthetic_clicks: vocab of slot C" + std::to_string(s + 1) + " is " +
                             std::to_string(vocab[s]) + ", not in [1, 10^8]");
    }
  }
  if (o.rows < 0 || o.rows > kMaxRows || o.test_rows < 0 || o.test_rows > kMaxRows) {
    return InvalidArgument("synthetic_clicks: rows and test_rows must be in [0, 2^61]");
  }
  if (!(o.zipf_exponent > 0 && o.zipf_exponent <= 10)) {
    return InvalidArgument("synthetic_clicks: zipf_exponent is " + std::to_string(o.zipf_exponent) +
                           ", not in (0, 10]");
  }
  RETURN_IF_ERROR(CheckUnit(o.int_missing, 0, 1, "int_missing"));
  RETURN_IF_ERROR(CheckUnit(o.cat_missing, 0, 1, "cat_missing"));
  return CheckUnit(o.click_rate, 0.001, 0.999, "click_rate");
}

}  // namespace

std::vector<int64_t> CriteoKaggleVocab(int64_t lo, int64_t hi) {
  std::vector<int64_t> vocab(kCriteoKaggleCardinalities.begin(), kCriteoKaggleCardinalities.end());
  for (int64_t& v : vocab) v = std::clamp(v, lo, hi);
  return vocab;
}

StatusOr<std::unique_ptr<SyntheticClicks>> SyntheticClicks::Create(const SyntheticClicksOptions& options,
                                                                   ClickSplit split) {
  std::vector<int64_t> vocab = options.vocab.empty() ? CriteoKaggleVocab() : options.vocab;
  RETURN_IF_ERROR(CheckOptions(options, vocab));
  std::unique_ptr<SyntheticClicks> clicks(new SyntheticClicks(options, std::move(vocab), split));
  clicks->Calibrate(options.click_rate);
  return clicks;
}

SyntheticClicks::SyntheticClicks(const SyntheticClicksOptions& o, std::vector<int64_t> vocab, ClickSplit split)
    : seed_(o.seed),
      split_(split),
      size_(split == ClickSplit::kTrain ? o.rows : o.test_rows),
      int_missing_(o.int_missing),
      cat_missing_(o.cat_missing),
      vocab_(std::move(vocab)) {
  for (int s = 0; s < kClickSlots; ++s) {
    const uint64_t n = static_cast<uint64_t>(vocab_[s]);
    uint64_t multiplier = Key(seed_, kPermutationTag, 2 * s) % n;
    while (std::gcd(multiplier, n) != 1) multiplier = (multiplier + 1) % n;
    const float scale_u = static_cast<float>(Uniform(Key(seed_, kScaleTag, s)));
    slots_.push_back({vocab_[s], multiplier, Key(seed_, kPermutationTag, 2 * s + 1) % n, Key(seed_, kWeightTag, s),
                      kMinSlotScale + (kMaxSlotScale - kMinSlotScale) * scale_u,
                      ZipfSampler(vocab_[s], o.zipf_exponent)});
  }
  for (int j = 0; j < kClickCounts; ++j) {
    const auto [median, alpha] = kCountShapes[j];
    count_features_.push_back({1 / alpha, median / (std::exp2(1 / alpha) - 1), static_cast<float>(std::log1p(median)),
                               kBetaScale * Normalish(Key(seed_, kCountTag, 2 * j)),
                               kCountMissingScale * Normalish(Key(seed_, kCountTag, 2 * j + 1))});
  }
  for (size_t p = 0; p < kInteractionPairs.size(); ++p) {
    pairs_.push_back({Key(seed_, kFactorUTag, p), Key(seed_, kFactorVTag, p)});
  }
}

// The bias that makes the mean planted probability `click_rate` over a
// calibration range of its own (so it depends on neither split's size),
// by bisection: the mean is increasing in the bias.
void SyntheticClicks::Calibrate(double click_rate) {
  std::vector<double> logits(kCalibrationExamples);
  int32_t counts[kClickCounts];
  int64_t ids[kClickSlots];
  for (int i = 0; i < kCalibrationExamples; ++i) {
    float main_effect, interaction;
    Compute(kCalibrationBase + i, counts, ids, &main_effect, &interaction, nullptr);
    logits[i] = static_cast<double>(main_effect) + interaction;
  }
  double lo = -40, hi = 40;
  for (int iteration = 0; iteration < 50; ++iteration) {
    const double mid = (lo + hi) / 2;
    double sum = 0;
    for (double z : logits) sum += Sigmoid(mid + z);
    (sum / kCalibrationExamples < click_rate ? lo : hi) = mid;
  }
  bias_ = (lo + hi) / 2;
}

uint64_t SyntheticClicks::GlobalIndex(int64_t index) const {
  return split_ == ClickSplit::kTrain ? static_cast<uint64_t>(index) : kTestBase + static_cast<uint64_t>(index);
}

void SyntheticClicks::Compute(uint64_t global, int32_t* counts, int64_t* ids, float* main_effect, float* interaction,
                              float* label) const {
  ExampleRng uniform(Key(seed_, kExampleTag, global));
  for (int j = 0; j < kClickCounts; ++j) {
    const Count& c = count_features_[j];
    if (uniform() < int_missing_) {
      counts[j] = kMissingCount;
      continue;
    }
    const double x = c.scale * (std::exp(-std::log(1 - uniform()) * c.inverse_alpha) - 1);
    counts[j] = static_cast<int32_t>(std::min(std::floor(x), static_cast<double>(kMaxCount)));
  }
  for (int s = 0; s < kClickSlots; ++s) {
    const Slot& slot = slots_[s];
    if (uniform() < cat_missing_) {
      ids[s] = kMissingId;
      continue;
    }
    const uint64_t rank = static_cast<uint64_t>(slot.zipf.Sample(uniform)) - 1;
    ids[s] = static_cast<int64_t>((rank * slot.multiplier + slot.offset) % static_cast<uint64_t>(slot.vocab));
  }
  *main_effect = MainEffect(counts, ids);
  *interaction = Interaction(ids);
  if (label) *label = uniform() < Sigmoid(static_cast<double>(*main_effect) + *interaction) ? 1.0f : 0.0f;
}

float SyntheticClicks::MainEffect(const int32_t* counts, const int64_t* ids) const {
  float logit = static_cast<float>(bias_);
  for (int s = 0; s < kClickSlots; ++s) {
    logit += slots_[s].weight_scale * Normalish(Hash(slots_[s].weight_key, IdKey(ids[s])));
  }
  for (int j = 0; j < kClickCounts; ++j) {
    const Count& c = count_features_[j];
    logit += counts[j] == kMissingCount ? c.missing_weight : c.beta * (Log1pCount(counts[j]) - c.center);
  }
  return logit;
}

// Each factor is four 16-bit fields of one hash, uniform in [-1, 1).
float SyntheticClicks::Interaction(const int64_t* ids) const {
  static_assert(kInteractionRank == 4, "a factor is the four 16-bit fields of one 64-bit hash");
  float sum = 0;
  for (size_t p = 0; p < kInteractionPairs.size(); ++p) {
    const uint64_t u = Hash(pairs_[p].u_key, IdKey(ids[kInteractionPairs[p].first]));
    const uint64_t v = Hash(pairs_[p].v_key, IdKey(ids[kInteractionPairs[p].second]));
    for (int r = 0; r < kInteractionRank; ++r) {
      const float ur = static_cast<float>((u >> (16 * r)) & 0xffff) * 0x1.0p-15f - 1;
      const float vr = static_cast<float>((v >> (16 * r)) & 0xffff) * 0x1.0p-15f - 1;
      sum += ur * vr;
    }
  }
  return kInteractionScale * sum;
}

Status SyntheticClicks::Read(int64_t first, int64_t n, ClickBatch* batch) const {
  return ReadWithLogits(first, n, batch, nullptr);
}

Status SyntheticClicks::ReadWithLogits(int64_t first, int64_t n, ClickBatch* batch, PlantedLogits* logits) const {
  RETURN_IF_ERROR(CheckClickRange(first, n, size_));
  batch->Resize(n);
  if (logits) {
    logits->main_effects.resize(n);
    logits->interactions.resize(n);
  }
  for (int64_t i = 0; i < n; ++i) {
    float main_effect, interaction;
    Compute(GlobalIndex(first + i), &batch->counts[i * kClickCounts], &batch->ids[i * kClickSlots], &main_effect,
            &interaction, &batch->labels[i]);
    if (logits) {
      logits->main_effects[i] = main_effect;
      logits->interactions[i] = interaction;
    }
  }
  return Status::OK();
}

Status SyntheticClicks::Gather(std::span<const int64_t> indices, ClickBatch* batch) const {
  for (int64_t index : indices) RETURN_IF_ERROR(CheckClickRange(index, 1, size_));
  batch->Resize(static_cast<int64_t>(indices.size()));
  for (size_t i = 0; i < indices.size(); ++i) {
    float main_effect, interaction;
    Compute(GlobalIndex(indices[i]), &batch->counts[i * kClickCounts], &batch->ids[i * kClickSlots], &main_effect,
            &interaction, &batch->labels[i]);
  }
  return Status::OK();
}

StatusOr<double> BayesAuc(const SyntheticClicksOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<SyntheticClicks> test, SyntheticClicks::Create(options, ClickSplit::kTest));
  ClickBatch batch;
  PlantedLogits logits;
  RETURN_IF_ERROR(test->ReadWithLogits(0, test->size(), &batch, &logits));
  // The AUC of the logit is that of the probability: sigmoid is increasing.
  std::vector<float> logit(test->size());
  for (int64_t i = 0; i < test->size(); ++i) logit[i] = logits.main_effects[i] + logits.interactions[i];
  return Auc(logit, batch.labels);
}

}  // namespace cairn
