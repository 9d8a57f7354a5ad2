#include "worker/linear_regression.h"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

namespace cairn {
namespace {
double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

LinearTruth MakeLinearTruth(const LinearProblemOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LinearTruth t;
  t.w.resize(o.features);
  for (int64_t i = 0; i < o.features; ++i) t.w[i] = normal(rng);
  t.b = normal(rng);
  return t;
}

LinearShard MakeLinearShard(const LinearProblemOptions& o, const LinearTruth& truth, int worker, int num_workers) {
  const int64_t rows = o.examples / num_workers + (worker < o.examples % num_workers ? 1 : 0);
  std::mt19937_64 rng(o.seed * 1000003ULL + 7919ULL * (worker + 1));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  LinearShard s;
  s.x.resize(rows, o.features);
  s.y.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < o.features; ++c) s.x(r, c) = normal(rng);
  }
  s.y = s.x * truth.w;
  for (int64_t r = 0; r < rows; ++r) s.y[r] += truth.b + static_cast<float>(o.noise_stddev) * normal(rng);
  return s;
}

std::vector<VariableSpec> LinearVariables(int64_t features) {
  VariableSpec w{kLinearWeights, {features}, DType::kFloat32, {}, true};
  VariableSpec b{kLinearBias, {1}, DType::kFloat32, {}, true};
  return {w, b};
}

StatusOr<WorkerReport> TrainLinearRegression(PsClient& client, const LinearShard& shard,
                                             const LinearTrainOptions& o, int64_t log_every,
                                             const std::function<void(const TrainProgress&)>& on_progress) {
  const int64_t n = shard.x.rows();
  const int64_t features = shard.x.cols();
  const int64_t batch = std::min<int64_t>(o.batch_size, n);
  const int64_t per_epoch = (n + batch - 1) / batch;
  int64_t total = per_epoch * o.epochs;
  if (o.max_steps > 0) total = std::min(total, o.max_steps);

  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed * 31 + o.worker);
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> xb(batch, features);
  Eigen::VectorXf yb(batch);

  WorkerReport report;
  double window_loss = 0;
  int64_t window_steps = 0;
  const auto start = Clock::now();
  report.start_time = WallSeconds();
  for (int64_t step = 0; step < total; ++step) {
    const int64_t in_epoch = step % per_epoch;
    if (in_epoch == 0) std::shuffle(order.begin(), order.end(), rng);
    const int64_t first = in_epoch * batch;
    const int64_t rows = std::min(batch, n - first);
    for (int64_t r = 0; r < rows; ++r) {
      xb.row(r) = shard.x.row(order[first + r]);
      yb[r] = shard.y[order[first + r]];
    }
    ASSIGN_OR_RETURN(auto values, client.Pull({kLinearWeights, kLinearBias}));
    const Tensor& w = values[kLinearWeights];
    const float b = values[kLinearBias].data<float>()[0];

    Eigen::VectorXf err = (xb.topRows(rows) * w.flat()).array() + b - yb.head(rows).array();
    window_loss += 0.5 * err.squaredNorm() / rows;
    ++window_steps;

    Tensor gw(DType::kFloat32, {features});
    gw.flat() = xb.topRows(rows).transpose() * err / static_cast<float>(rows);
    Tensor gb(DType::kFloat32, {1});
    gb.data<float>()[0] = err.mean();
    RETURN_IF_ERROR(client.Push({{kLinearWeights, gw}, {kLinearBias, gb}}));

    report.steps = step + 1;
    report.examples += rows;
    if ((step + 1) % log_every == 0 || step + 1 == total) {
      report.final_loss = window_loss / window_steps;
      if (on_progress) on_progress(TrainProgress{step + 1, total, report.final_loss});
      window_loss = 0;
      window_steps = 0;
    }
  }
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report.end_time = WallSeconds();
  return report;
}

StatusOr<LinearDistance> DistanceToTruth(PsClient& client, const LinearTruth& truth) {
  ASSIGN_OR_RETURN(auto values, client.Pull({kLinearWeights, kLinearBias}));
  LinearDistance d;
  d.weight_distance = (values[kLinearWeights].flat() - truth.w).norm();
  d.relative_distance = d.weight_distance / std::max(1e-12f, truth.w.norm());
  d.bias_error = std::abs(values[kLinearBias].data<float>()[0] - truth.b);
  return d;
}

}  // namespace cairn
