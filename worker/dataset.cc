#include "worker/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>

namespace cairn {
namespace {

// Reads a whole file through zlib, which passes plain files through as-is.
StatusOr<std::string> ReadMaybeGzip(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    return NotFound("data file '" + path + "' does not exist (Fashion-MNIST: apt-get install dataset-fashion-mnist)");
  }
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return NotFound("cannot open data file '" + path + "'");
  std::string out;
  char buf[1 << 16];
  while (true) {
    int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      std::string why = gzerror(f, &err);
      gzclose(f);
      return DataLoss("data file '" + path + "' is corrupt: " + why);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (size_t{1} << 32)) {
      gzclose(f);
      return DataLoss("data file '" + path + "' is larger than 4 GiB");
    }
  }
  const bool truncated = !gzeof(f);
  // gzclose reports a gzip stream that ended before its trailer.
  const int closed = gzclose(f);
  if (truncated || closed != Z_OK) return DataLoss("data file '" + path + "' ended early (truncated)");
  return out;
}

uint32_t BigEndian32(const std::string& b, size_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + off);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path, int64_t limit) {
  ASSIGN_OR_RETURN(std::string images, ReadMaybeGzip(images_path));
  ASSIGN_OR_RETURN(std::string labels, ReadMaybeGzip(labels_path));
  if (images.size() < 16 || BigEndian32(images, 0) != 0x803) {
    return DataLoss("'" + images_path + "' is not an IDX image file (bad magic)");
  }
  if (labels.size() < 8 || BigEndian32(labels, 0) != 0x801) {
    return DataLoss("'" + labels_path + "' is not an IDX label file (bad magic)");
  }
  const uint64_t count = BigEndian32(images, 4), rows = BigEndian32(images, 8), cols = BigEndian32(images, 12);
  const uint64_t label_count = BigEndian32(labels, 4);
  if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096) {
    return DataLoss("'" + images_path + "' declares images of " + std::to_string(rows) + "x" + std::to_string(cols));
  }
  if (images.size() != 16 + count * rows * cols) {
    return DataLoss("'" + images_path + "' declares " + std::to_string(count) + " images of " +
                    std::to_string(rows * cols) + " pixels but holds " + std::to_string(images.size() - 16) +
                    " pixel bytes");
  }
  if (labels.size() != 8 + label_count) {
    return DataLoss("'" + labels_path + "' declares " + std::to_string(label_count) + " labels but holds " +
                    std::to_string(labels.size() - 8));
  }
  if (label_count != count) {
    return InvalidArgument("'" + images_path + "' has " + std::to_string(count) + " images but '" + labels_path +
                           "' has " + std::to_string(label_count) + " labels");
  }
  Dataset d;
  d.examples = limit > 0 ? std::min<int64_t>(limit, count) : static_cast<int64_t>(count);
  d.features = static_cast<int64_t>(rows * cols);
  d.x.resize(d.examples * d.features);
  d.labels.resize(d.examples);
  const auto* px = reinterpret_cast<const unsigned char*>(images.data() + 16);
  for (int64_t i = 0; i < d.examples * d.features; ++i) d.x[i] = px[i] / 255.0f;
  for (int64_t i = 0; i < d.examples; ++i) d.labels[i] = static_cast<unsigned char>(labels[8 + i]);
  return d;
}

StatusOr<Dataset> LoadFashionMnist(const std::string& dir, const std::string& split, int64_t limit) {
  if (split != "train" && split != "t10k") return InvalidArgument("split must be 'train' or 't10k', got '" + split + "'");
  return LoadIdx(dir + "/" + split + "-images-idx3-ubyte.gz", dir + "/" + split + "-labels-idx1-ubyte.gz", limit);
}

ShardIterator::ShardIterator(const Dataset* data, int worker, int num_workers, int64_t batch_size, uint64_t seed)
    : ShardIterator(data, data->examples, worker, num_workers, batch_size, seed) {}

ShardIterator::ShardIterator(int64_t examples, int worker, int num_workers, int64_t batch_size, uint64_t seed)
    : ShardIterator(nullptr, examples, worker, num_workers, batch_size, seed) {}

ShardIterator::ShardIterator(const Dataset* data, int64_t examples, int worker, int num_workers, int64_t batch_size,
                             uint64_t seed)
    : data_(data), batch_(batch_size), seed_(seed), worker_(worker) {
  for (int64_t i = worker; i < examples; i += num_workers) mine_.push_back(i);
  steps_per_epoch_ = std::max<int64_t>(1, examples / (static_cast<int64_t>(num_workers) * batch_size));
  order_ = mine_;
}

void ShardIterator::Seek(const DataPosition& position) {
  position_ = position;
  shuffled_epoch_ = -1;
}

void ShardIterator::Shuffle() {
  order_ = mine_;
  std::mt19937_64 rng(seed_ * 1000003ULL + static_cast<uint64_t>(position_.epoch) * 7919ULL + worker_);
  std::shuffle(order_.begin(), order_.end(), rng);
  shuffled_epoch_ = position_.epoch;
}

void ShardIterator::NextIndices(std::vector<int64_t>* indices) {
  if (shuffled_epoch_ != position_.epoch) Shuffle();
  indices->resize(batch_);
  const int64_t first = position_.step_in_epoch * batch_;
  const int64_t size = static_cast<int64_t>(order_.size());
  for (int64_t r = 0; r < batch_; ++r) (*indices)[r] = order_[(first + r) % size];
  if (++position_.step_in_epoch == steps_per_epoch_) {
    position_.step_in_epoch = 0;
    ++position_.epoch;
  }
}

void ShardIterator::Next(Tensor* x, Tensor* y) {
  if (mine_.empty()) {  // no examples for this worker: an all-zero batch, never a crash
    *x = Tensor(DType::kFloat32, {batch_, data_->features});
    *y = data_->classification() ? Tensor(DType::kInt64, {batch_}) : Tensor(DType::kFloat32, {batch_, 1});
    return;
  }
  std::vector<int64_t> indices;
  NextIndices(&indices);
  GatherRows(*data_, indices, x, y);
}

void GatherRows(const Dataset& data, std::span<const int64_t> indices, Tensor* x, Tensor* y) {
  const int64_t f = data.features;
  const int64_t n = static_cast<int64_t>(indices.size());
  *x = Tensor(DType::kFloat32, {n, f});
  if (data.classification()) *y = Tensor(DType::kInt64, {n});
  else *y = Tensor(DType::kFloat32, {n, 1});
  for (int64_t r = 0; r < n; ++r) {
    const int64_t i = indices[r];
    std::memcpy(x->data<float>() + r * f, data.x.data() + i * f, f * sizeof(float));
    if (data.classification()) y->data<int64_t>()[r] = data.labels[i];
    else y->data<float>()[r] = data.targets[i];
  }
}

void FeatureMoments(const Dataset& data, std::vector<float>* mean, std::vector<float>* inv_std, double min_stddev) {
  const int64_t f = data.features;
  std::vector<double> sum(f, 0.0), sq(f, 0.0);
  for (int64_t i = 0; i < data.examples; ++i) {
    const float* row = data.x.data() + i * f;
    for (int64_t j = 0; j < f; ++j) {
      sum[j] += row[j];
      sq[j] += static_cast<double>(row[j]) * row[j];
    }
  }
  mean->assign(f, 0.0f);
  inv_std->assign(f, 1.0f);
  const double n = std::max<int64_t>(1, data.examples);
  for (int64_t j = 0; j < f; ++j) {
    const double m = sum[j] / n;
    const double var = std::max(0.0, sq[j] / n - m * m);
    (*mean)[j] = static_cast<float>(m);
    (*inv_std)[j] = static_cast<float>(1.0 / std::max(min_stddev, std::sqrt(var)));
  }
}

}  // namespace cairn
