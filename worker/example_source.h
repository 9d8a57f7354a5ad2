// ExampleSource: what a Trainer trains and evaluates on. Examples are
// addressed by index in [0, size()), so the trainer shards and shuffles
// indices (ShardIterator) and a data position resumes exactly; the source
// turns a batch's indices into the model's feeds.
//
// Thread safety: const and immutable after construction; the worker threads
// of a --local job share one source, each feeding its own batches.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "worker/dataset.h"
#include "worker/model.h"
#include "worker/session.h"

namespace cairn {

class ExampleSource {
 public:
  virtual ~ExampleSource() = default;

  virtual int64_t size() const = 0;

  // Feeds `model`'s inputs and labels (model.x, model.y, and model.ids for
  // the click models) with examples `indices`, row k holding example
  // indices[k]. An error for an index out of range or a model whose inputs
  // the source cannot feed.
  virtual Status Feed(std::span<const int64_t> indices, const Model& model, FeedMap* feeds) const = 0;

  // The per-feature mean and 1/stddev of model.x's features, for the
  // normalization variables (model.mean, model.inv_std) the chief sets
  // before training.
  virtual Status Moments(std::vector<float>* mean, std::vector<float>* inv_std) const = 0;
};

// A Dataset (borrowed: it must outlive the source) as an ExampleSource:
// model.x gets its features, model.y its labels or targets.
class DatasetExamples final : public ExampleSource {
 public:
  explicit DatasetExamples(const Dataset* data) : data_(data) {}

  int64_t size() const override { return data_->examples; }
  Status Feed(std::span<const int64_t> indices, const Model& model, FeedMap* feeds) const override;
  Status Moments(std::vector<float>* mean, std::vector<float>* inv_std) const override;

 private:
  const Dataset* const data_;
};

}  // namespace cairn
