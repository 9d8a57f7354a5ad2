#include "worker/click_examples.h"

#include <algorithm>
#include <cmath>

#include "common/sparse_spec.h"

namespace cairn {
namespace {

// The model's inputs for one batch of examples.
void ToTensors(const ClickBatch& b, Tensor* ids, Tensor* dense, Tensor* labels) {
  *ids = Tensor(DType::kInt64, {b.size, kClickSlots});
  *dense = Tensor(DType::kFloat32, {b.size, kClickCounts});
  *labels = Tensor(DType::kFloat32, {b.size});
  int64_t* id = ids->data<int64_t>();
  for (int64_t r = 0; r < b.size; ++r) {
    for (int s = 0; s < kClickSlots; ++s) {
      const int64_t v = b.id(r, s);
      id[r * kClickSlots + s] = v < 0 ? -1 : ClickTableId(s, v);
    }
  }
  float* x = dense->data<float>();
  for (int64_t k = 0; k < b.size * kClickCounts; ++k) x[k] = ClickDenseFeature(b.counts[k]);
  std::copy(b.labels.begin(), b.labels.end(), labels->data<float>());
}

}  // namespace

int64_t ClickTableId(int slot, int64_t id) {
  const uint64_t salt = MixId(static_cast<int64_t>(slot) + 1);
  return static_cast<int64_t>(MixId(static_cast<int64_t>(static_cast<uint64_t>(id) ^ salt)) >> 1);
}

float ClickDenseFeature(int32_t count) {
  if (count == kMissingCount || count <= 0) return 0.0f;
  return static_cast<float>(std::log1p(static_cast<double>(count)));
}

Status ClickExamples::Feed(std::span<const int64_t> indices, const Model& model, FeedMap* feeds) const {
  if (!model.ids.valid()) return InvalidArgument("a click log feeds only the click models (click_logistic, click_wide_deep)");
  ClickBatch batch;
  RETURN_IF_ERROR(source_->Gather(indices, &batch));
  Tensor ids, dense, labels;
  ToTensors(batch, &ids, &dense, &labels);
  (*feeds)[model.ids] = std::move(ids);
  (*feeds)[model.x] = std::move(dense);
  (*feeds)[model.y] = std::move(labels);
  return Status::OK();
}

Status ClickExamples::Moments(std::vector<float>* mean, std::vector<float>* inv_std) const {
  const int64_t n = std::min(size(), moment_examples_);
  std::vector<double> sum(kClickCounts, 0.0), sq(kClickCounts, 0.0);
  ClickBatch batch;
  for (int64_t first = 0; first < n; first += 4096) {
    RETURN_IF_ERROR(source_->Read(first, std::min<int64_t>(4096, n - first), &batch));
    for (int64_t r = 0; r < batch.size; ++r) {
      for (int j = 0; j < kClickCounts; ++j) {
        const double v = ClickDenseFeature(batch.count(r, j));
        sum[j] += v;
        sq[j] += v * v;
      }
    }
  }
  mean->assign(kClickCounts, 0.0f);
  inv_std->assign(kClickCounts, 1.0f);
  const double count = static_cast<double>(std::max<int64_t>(1, n));
  for (int j = 0; j < kClickCounts; ++j) {
    const double m = sum[j] / count;
    const double stddev = std::sqrt(std::max(0.0, sq[j] / count - m * m));
    (*mean)[j] = static_cast<float>(m);
    (*inv_std)[j] = static_cast<float>(1.0 / std::max(0.05, stddev));
  }
  return Status::OK();
}

}  // namespace cairn
