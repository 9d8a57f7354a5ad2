// Datasets a worker trains on, and the iterator over its share of them.
//
// A Dataset is a matrix of float features (one example per row) with either
// int64 class labels or float targets. Fashion-MNIST comes from IDX files
// (gzip or plain) such as those of Debian's dataset-fashion-mnist package;
// linear-regression data is generated from a seed.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"

namespace cairn {

struct Dataset {
  int64_t examples = 0;
  int64_t features = 0;
  std::vector<float> x;         // examples x features, row-major
  std::vector<int64_t> labels;  // classification: one per example
  std::vector<float> targets;   // regression: one per example

  bool classification() const { return !labels.empty(); }
};

// Reads an IDX image file (magic 0x803, uint8 pixels scaled to [0, 1]) and
// its IDX label file (magic 0x801). Gzip is detected and handled. At most
// `limit` examples are read (0: all). NotFound names a missing file; DataLoss
// names a truncated or corrupt one; InvalidArgument a mismatch between them.
StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path, int64_t limit = 0);

// Fashion-MNIST's standard file names in `dir`: "train" or "t10k" split.
StatusOr<Dataset> LoadFashionMnist(const std::string& dir, const std::string& split, int64_t limit = 0);

// Where an iterator is: for snapshots and exact resume.
struct DataPosition {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;
};

// Batches of one worker's share of a dataset: examples i with
// i % num_workers == worker, reshuffled each epoch from (seed, epoch,
// worker). Every worker gets the same number of steps per epoch
// (floor(examples / (num_workers * batch))), so sync workers stay in step.
//
// The iterator deals in indices; over a Dataset it also gathers the rows
// (Next). Over any other source of `examples` examples (a click log,
// worker/example_source.h) it gives the batch's indices (NextIndices) and
// the source feeds them.
class ShardIterator {
 public:
  ShardIterator(const Dataset* data, int worker, int num_workers, int64_t batch_size, uint64_t seed);
  ShardIterator(int64_t examples, int worker, int num_workers, int64_t batch_size, uint64_t seed);

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  // This worker's examples; 0 when there are fewer examples than workers.
  int64_t shard_size() const { return static_cast<int64_t>(mine_.size()); }
  const DataPosition& position() const { return position_; }
  // Continues from `position` (as restored from a snapshot).
  void Seek(const DataPosition& position);

  // The next batch: features [batch, features] and labels [batch] (int64)
  // or targets [batch, 1] (float). Advances the position.
  // Only with the Dataset constructor.
  void Next(Tensor* x, Tensor* y);
  // The next batch's example indices (batch_size of them; a shard smaller
  // than a batch wraps around). Advances the position. Precondition:
  // shard_size() > 0.
  void NextIndices(std::vector<int64_t>* indices);

 private:
  ShardIterator(const Dataset* data, int64_t examples, int worker, int num_workers, int64_t batch_size, uint64_t seed);
  void Shuffle();

  const Dataset* const data_;  // null: indices only
  const int64_t batch_;
  const uint64_t seed_;
  const int worker_;
  std::vector<int64_t> mine_;   // this worker's example indices
  std::vector<int64_t> order_;  // this epoch's order
  int64_t steps_per_epoch_ = 0;
  DataPosition position_;
  int64_t shuffled_epoch_ = -1;
};

// Rows `indices` of `data`: features [n, features] and labels [n] (int64)
// or targets [n, 1] (float).
void GatherRows(const Dataset& data, std::span<const int64_t> indices, Tensor* x, Tensor* y);

// Per-feature mean and 1/stddev over every example. The stddev is floored at
// `min_stddev` so that a feature that is nearly constant in training (a
// corner pixel) does not blow up when it does vary.
void FeatureMoments(const Dataset& data, std::vector<float>* mean, std::vector<float>* inv_std,
                    double min_stddev = 0.05);

}  // namespace cairn
