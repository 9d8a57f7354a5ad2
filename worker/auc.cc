#include "worker/auc.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace cairn {

double Auc(std::span<const float> scores, std::span<const float> labels) {
  assert(scores.size() == labels.size() && scores.size() < (size_t{1} << 32));
  std::vector<uint32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return scores[a] < scores[b]; });
  // Walk up the scores a run of ties at a time: each positive of a run
  // beats every negative below the run and ties half of those in it.
  double wins = 0, negatives_below = 0, positives = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    double run_positives = 0, run_negatives = 0;
    for (; j < order.size() && scores[order[j]] == scores[order[i]]; ++j) {
      (labels[order[j]] > 0.5f ? run_positives : run_negatives) += 1;
    }
    wins += run_positives * (negatives_below + 0.5 * run_negatives);
    negatives_below += run_negatives;
    positives += run_positives;
    i = j;
  }
  if (positives == 0 || negatives_below == 0) return std::numeric_limits<double>::quiet_NaN();
  return wins / (positives * negatives_below);
}

}  // namespace cairn
