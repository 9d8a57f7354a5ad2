// The sparse tables' kernels of worker/ops.h: a Run's ids, deduplicated
// (IdRows, ReadRows), and the lookups' forward values and gradients over
// the rows pulled for them.
#include <algorithm>
#include <cstring>

#include "common/sparse_spec.h"
#include "worker/ops.h"

namespace cairn {
namespace {

using RowMatrix = Tensor::RowMatrix;

// The row of `id` in table.ids, or -1.
int64_t RowOf(const TableRows& table, int64_t id) { return table.index ? table.index->Find(id) : -1; }

Status NotPulled(const Node& node, int64_t id) {
  return Internal("node '" + node.name + "': id " + std::to_string(id) + " was not pulled for this Run");
}

// [batch, bag] ids of a bag as their batch and bag sizes.
std::pair<int64_t, int64_t> BagShape(const Tensor& ids) {
  return {ids.rank() == 2 ? ids.dim(0) : 0, ids.rank() == 2 ? ids.dim(1) : 0};
}

int64_t PresentIds(const int64_t* bag, int64_t size) {
  return std::count_if(bag, bag + size, [](int64_t id) { return id >= 0; });
}

// ColumnMean's input as a matrix with at least one row.
}  // namespace

Status AppendLookupIds(const Node& node, const Tensor& ids, std::vector<int64_t>* out) {
  const int64_t* p = ids.data<int64_t>();
  const int64_t n = ids.num_elements();
  for (int64_t i = 0; i < n; ++i) {
    if (p[i] >= 0) {
      out->push_back(p[i]);
    } else if (node.op == OpType::kEmbeddingLookup) {
      return InvalidArgument("node '" + node.name + "': id " + std::to_string(p[i]) + " at position " +
                             std::to_string(i) + " is negative (an EmbeddingBag skips negative ids, a lookup cannot)");
    }
  }
  return Status::OK();
}

IdRows::IdRows(const std::vector<int64_t>& ids) {
  size_t cap = 16;
  while (cap < 2 * ids.size()) cap *= 2;
  keys_.assign(cap, 0);
  rows_.assign(cap, -1);
  mask_ = cap - 1;
  std::vector<int64_t> unique;
  unique.reserve(ids.size());
  for (int64_t id : ids) {
    size_t at = MixId(id) & mask_;
    while (rows_[at] >= 0 && keys_[at] != id) at = (at + 1) & mask_;
    if (rows_[at] >= 0) continue;  // seen
    keys_[at] = id;
    rows_[at] = static_cast<int32_t>(unique.size());
    unique.push_back(id);
  }
  unique_ = Tensor::Uninitialized(DType::kInt64, {static_cast<int64_t>(unique.size())});
  std::copy(unique.begin(), unique.end(), unique_.data<int64_t>());
}

int64_t IdRows::Find(int64_t id) const {
  for (size_t at = MixId(id) & mask_;; at = (at + 1) & mask_) {
    if (rows_[at] < 0) return -1;
    if (keys_[at] == id) return rows_[at];
  }
}

TableRows ReadRows(const std::vector<int64_t>& ids, int32_t dim) {
  TableRows t;
  auto index = std::make_shared<IdRows>(ids);
  t.ids = index->unique();
  t.rows = Tensor(DType::kFloat32, {0, dim});
  t.index = std::move(index);
  return t;
}

StatusOr<Tensor> EmbeddingForward(const Node& node, const TableRows& table, const Tensor& ids) {
  const int64_t dim = node.shape.back();  // [..., dim] for a lookup, [batch, dim] for a bag
  Eigen::Map<const RowMatrix> rows(table.rows.data<float>(), table.ids.num_elements(), dim);
  const int64_t* p = ids.data<int64_t>();
  if (node.op == OpType::kEmbeddingLookup) {
    Shape shape = ids.shape();
    shape.push_back(dim);
    Tensor out = Tensor::Uninitialized(DType::kFloat32, std::move(shape));
    Eigen::Map<RowMatrix> o(out.data<float>(), ids.num_elements(), dim);
    for (int64_t i = 0; i < ids.num_elements(); ++i) {
      const int64_t r = RowOf(table, p[i]);
      if (r < 0) return NotPulled(node, p[i]);
      o.row(i) = rows.row(r);
    }
    return out;
  }
  const auto [batch, bag] = BagShape(ids);
  Tensor out(DType::kFloat32, {batch, dim});
  Eigen::Map<RowMatrix> o(out.data<float>(), batch, dim);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t k = 0; k < bag; ++k) {
      const int64_t id = p[b * bag + k];
      if (id < 0) continue;
      const int64_t r = RowOf(table, id);
      if (r < 0) return NotPulled(node, id);
      o.row(b) += rows.row(r);
    }
    const int64_t present = PresentIds(p + b * bag, bag);
    if (node.combiner == Combiner::kMean && present > 0) o.row(b) /= static_cast<float>(present);
  }
  return out;
}

void EmbeddingBackward(const Node& node, const TableRows& table, const Tensor& ids, const Tensor& grad,
                       TableGradient* into) {
  const int64_t dim = node.shape.back();  // [..., dim] for a lookup, [batch, dim] for a bag
  Eigen::Map<RowMatrix> dr(into->rows.data<float>(), table.ids.num_elements(), dim);
  const int64_t* p = ids.data<int64_t>();
  // Rows come from the same table ids the forward pass read, so every id is there.
  if (node.op == OpType::kEmbeddingLookup) {
    Eigen::Map<const RowMatrix> g(grad.data<float>(), ids.num_elements(), dim);
    for (int64_t i = 0; i < ids.num_elements(); ++i) {
      const int64_t r = RowOf(table, p[i]);
      dr.row(r) += g.row(i);
      into->touched[r] = 1;
    }
    return;
  }
  const auto [batch, bag] = BagShape(ids);
  Eigen::Map<const RowMatrix> g(grad.data<float>(), batch, dim);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t present = PresentIds(p + b * bag, bag);
    const float scale = node.combiner == Combiner::kMean && present > 0 ? static_cast<float>(present) : 1.0f;
    for (int64_t k = 0; k < bag; ++k) {
      const int64_t id = p[b * bag + k];
      if (id < 0) continue;
      const int64_t r = RowOf(table, id);
      dr.row(r) += g.row(b) / scale;
      into->touched[r] = 1;
    }
  }
}

}  // namespace cairn
