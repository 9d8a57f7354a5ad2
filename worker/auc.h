// The area under the ROC curve, exactly.
#pragma once

#include <span>

namespace cairn {

// P(score of a random positive > score of a random negative), a tie
// counting one half (the Mann-Whitney U with midranks), computed by sorting:
// O(n log n), exact, no binning. A label > 0.5 is a positive. NaN if either
// class is absent. Preconditions: scores.size() == labels.size() < 2^32, no
// score is NaN.
double Auc(std::span<const float> scores, std::span<const float> labels);

}  // namespace cairn
