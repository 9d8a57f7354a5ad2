// data.kind: synthetic_clicks: a click log shaped like Criteo's, computed
// example by example from (seed, index), with a planted model behind its
// labels whose AUC (BayesAuc) no model can pass.
//
// An example (see click_data.h for the sentinels and index spaces):
// - 13 integer counts, each missing with probability int_missing; present
//   ones are Lomax (Pareto II) draws, floor(scale * (U^(-1/alpha) - 1)),
//   capped at 10^9, heavy-tailed like Criteo's I1..I13.
// - 26 categorical ids, each missing with probability cat_missing; present
//   ones are Zipf(zipf_exponent) ranks over the slot's vocabulary, mapped
//   to ids in [0, vocab[s]) by a fixed affine permutation so the frequent
//   ids are spread over the range (and over the shards of a range-sharded
//   table) rather than packed at 0.
// - A label drawn from the planted probability sigmoid(logit):
//     logit = bias
//           + sum over slots s of w_s(id_s)                 (per-id weights)
//           + sum over counts j of beta_j * (log1p(count_j) - log1p(median_j))  (or a weight for missing)
//           + sum over the pairs (a, b) of kInteractionPairs of <u_ab(id_a), v_ab(id_b)>
//   w, u and v (rank 4) are hashes of (seed, slot, id), never tables, so a
//   10^8 vocabulary costs no memory; a missing id has a weight and factors
//   of its own, like any value. Rare ids have weights as large as frequent
//   ones and are seen rarely: as hard to learn as in real logs. The
//   interactions are what embeddings (FM, DLRM, wide & deep) can learn and
//   plain logistic regression cannot. The bias is set at Create, from 2^15
//   examples of a calibration range, so the mean planted probability is
//   click_rate.
//
// Cost: an example takes ~0.85 µs on one core (1.1-1.2 M examples/s
// measured: 26 Zipf draws, 13 Lomax draws, ~40 hashes); Create ~35 ms (the
// calibration).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "worker/click_data.h"
#include "worker/zipf_sampler.h"

namespace cairn {

enum class ClickSplit { kTrain, kTest };

// The planted logit of examples, split so a test can see what the
// interactions add: main_effects holds the bias, the per-id weights and the
// count terms.
struct PlantedLogits {
  std::vector<float> main_effects;
  std::vector<float> interactions;
};

struct SyntheticClicksOptions {
  uint64_t seed = 1;
  int64_t rows = 2000000;      // train split: examples [0, rows)
  int64_t test_rows = 200000;  // test split: examples [0, test_rows) of the test range
  // Per-slot vocabulary sizes (kClickSlots of them, each in [1, 10^8]);
  // empty: CriteoKaggleVocab() (Criteo Kaggle's, clipped to [10, 10^6]).
  std::vector<int64_t> vocab;
  double zipf_exponent = 1.1;  // in (0, 10]
  double int_missing = 0.20;   // in [0, 1]
  double cat_missing = 0.08;   // in [0, 1]
  double click_rate = 0.25;    // in [0.001, 0.999]: the mean planted probability
};

// The 26 per-slot cardinalities of the Criteo Kaggle (Display Advertising
// Challenge) train set, C1..C26, each clipped to [lo, hi].
std::vector<int64_t> CriteoKaggleVocab(int64_t lo = 10, int64_t hi = 1000000);

// The slot pairs (0-based: C1 is 0) whose ids interact in the planted
// logit: small with small, mid with mid, large with large.
inline constexpr std::array<std::pair<int, int>, 6> kInteractionPairs = {
    {{0, 1}, {5, 13}, {6, 10}, {7, 18}, {9, 23}, {2, 3}}};
inline constexpr int kInteractionRank = 4;

class SyntheticClicks final : public ClickSource {
 public:
  // InvalidArgument names the option out of range.
  static StatusOr<std::unique_ptr<SyntheticClicks>> Create(const SyntheticClicksOptions& options,
                                                           ClickSplit split = ClickSplit::kTrain);

  int64_t size() const override { return size_; }
  Status Read(int64_t first, int64_t n, ClickBatch* batch) const override;
  Status Gather(std::span<const int64_t> indices, ClickBatch* batch) const override;

  // Read, and the planted logit of each example in two parts: the click
  // probability is sigmoid(main_effects[i] + interactions[i]). For tests
  // and for BayesAuc; a trainer has no business with the answer.
  Status ReadWithLogits(int64_t first, int64_t n, ClickBatch* batch, PlantedLogits* logits) const;

  const std::vector<int64_t>& vocab() const { return vocab_; }
  ClickSplit split() const { return split_; }
  double bias() const { return bias_; }

 private:
  struct Slot {
    int64_t vocab;
    uint64_t multiplier, offset;  // rank r -> id (r * multiplier + offset) mod vocab
    uint64_t weight_key;
    float weight_scale;
    ZipfSampler zipf;
  };
  struct Count {
    double inverse_alpha, scale;
    float center;  // log1p(median): a present count's term is centred like a missing one's
    float beta, missing_weight;
  };
  struct Pair {
    uint64_t u_key, v_key;
  };

  SyntheticClicks(const SyntheticClicksOptions& options, std::vector<int64_t> vocab, ClickSplit split);
  uint64_t GlobalIndex(int64_t index) const;
  // Example `global` into counts[kClickCounts] and ids[kClickSlots], its
  // logit parts, and its label if `label` is not null.
  void Compute(uint64_t global, int32_t* counts, int64_t* ids, float* main_effect, float* interaction,
               float* label) const;
  float MainEffect(const int32_t* counts, const int64_t* ids) const;
  float Interaction(const int64_t* ids) const;
  void Calibrate(double click_rate);

  // Constant after construction.
  const uint64_t seed_;
  const ClickSplit split_;
  const int64_t size_;
  const double int_missing_, cat_missing_;
  const std::vector<int64_t> vocab_;
  std::vector<Slot> slots_;
  std::vector<Count> count_features_;
  std::vector<Pair> pairs_;
  double bias_ = 0;
};

// The AUC of the planted probabilities against the labels of the test
// split of `options` (test_rows examples): the ceiling no model trained on
// this data can pass, up to the test set's sampling noise. Errors as for
// SyntheticClicks::Create.
StatusOr<double> BayesAuc(const SyntheticClicksOptions& options);

}  // namespace cairn
