// ClickExamples: a click log (any ClickSource) as the examples of the click
// models (model.kind click_logistic, click_wide_deep; worker/model.h).
//
// Each batch is computed or copied from the source by index when it is fed
// (synthetic examples are never materialized), into:
//   model.ids   int64 [n, kClickSlots]: ClickTableId(slot, id), or -1 for a
//               missing id (skipped by the models' EmbeddingBags)
//   model.x     float [n, kClickCounts]: log(1 + count), 0 for a missing
//               count (a negative count, which Criteo has down to -3, counts
//               as 0)
//   model.y     float [n]: the labels
#pragma once

#include <cstdint>
#include <memory>

#include "worker/click_data.h"
#include "worker/example_source.h"

namespace cairn {

// The sparse-table id of slot `slot`'s id `id` (>= 0): one id space for all
// slots, well mixed (MixId of the id salted by the slot, top bit cleared),
// so the slots share a table without their ids colliding (the same number
// in two slots is two unrelated values) and the servers' routing spreads
// every slot's frequent ids.
int64_t ClickTableId(int slot, int64_t id);

// log(1 + max(count, 0)), or 0 for kMissingCount.
float ClickDenseFeature(int32_t count);

class ClickExamples final : public ExampleSource {
 public:
  // Moments are taken over the first `moment_examples` examples (or all,
  // if fewer): enough for 13 statistics without a pass over the whole log.
  explicit ClickExamples(std::unique_ptr<const ClickSource> source, int64_t moment_examples = 1 << 17)
      : source_(std::move(source)), moment_examples_(moment_examples) {}

  int64_t size() const override { return source_->size(); }
  // InvalidArgument unless model.ids is set (a click model).
  Status Feed(std::span<const int64_t> indices, const Model& model, FeedMap* feeds) const override;
  Status Moments(std::vector<float>* mean, std::vector<float>* inv_std) const override;

  const ClickSource& source() const { return *source_; }

 private:
  const std::unique_ptr<const ClickSource> source_;
  const int64_t moment_examples_;
};

}  // namespace cairn
