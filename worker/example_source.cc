#include "worker/example_source.h"

namespace cairn {

Status DatasetExamples::Feed(std::span<const int64_t> indices, const Model& model, FeedMap* feeds) const {
  for (int64_t i : indices) {
    if (i < 0 || i >= data_->examples) return OutOfRange("example " + std::to_string(i) + " is not in the dataset");
  }
  Tensor x, y;
  GatherRows(*data_, indices, &x, &y);
  (*feeds)[model.x] = std::move(x);
  (*feeds)[model.y] = std::move(y);
  return Status::OK();
}

Status DatasetExamples::Moments(std::vector<float>* mean, std::vector<float>* inv_std) const {
  FeatureMoments(*data_, mean, inv_std);
  return Status::OK();
}

}  // namespace cairn
