#include "bench/bench_worker.h"

namespace cairn {

BenchWorker::BenchWorker(EventLoop& loop, const LocalCluster& cluster, int id, const VariableSpec& spec,
                         std::chrono::milliseconds timeout, PlacementOptions placement)
    : transport_(loop, cluster.endpoints(), cluster.ClientOptions(id == 0 ? PeerRole::kChief : PeerRole::kWorker, id)),
      client_(&transport_, PsClientOptions{id, timeout, placement}),
      spec_(spec) {
  Tensor grad(spec.dtype, spec.shape);
  grad.flat().setConstant(1.0f);
  batch_.gradients.emplace(spec.name, std::move(grad));
}

Status BenchWorker::Create(const OptimizerSpec& optimizer) {
  return client_.Create({spec_}, optimizer, TrainingMode{});
}

Status BenchWorker::Push() {
  if (depth_ == 1) return client_.Push(batch_);
  pushes_.push_back(client_.PushAsync(batch_));
  if (static_cast<int>(pushes_.size()) < depth_) return Status::OK();
  Status st = pushes_.front().Wait();
  pushes_.pop_front();
  return st;
}

Status BenchWorker::CheckPulled(const StatusOr<std::map<std::string, Tensor>>& values) const {
  if (!values.ok()) return values.status();
  auto it = values->find(spec_.name);
  if (it == values->end() || it->second.byte_size() != spec_.byte_size()) {
    return DataLoss("pull of '" + spec_.name + "' returned the wrong value");
  }
  return Status::OK();
}

Status BenchWorker::Pull() {
  if (depth_ == 1) return CheckPulled(client_.Pull({spec_.name}));
  pulls_.push_back(client_.PullAsync({spec_.name}));
  if (static_cast<int>(pulls_.size()) < depth_) return Status::OK();
  Status st = CheckPulled(pulls_.front().Wait());
  pulls_.pop_front();
  return st;
}

Status BenchWorker::Drain() {
  Status first;
  for (; !pushes_.empty(); pushes_.pop_front()) {
    Status st = pushes_.front().Wait();
    if (first.ok()) first = st;
  }
  for (; !pulls_.empty(); pulls_.pop_front()) {
    Status st = CheckPulled(pulls_.front().Wait());
    if (first.ok()) first = st;
  }
  return first;
}

Status BenchWorker::PushPull() {
  RETURN_IF_ERROR(Push());
  return Pull();
}

}  // namespace cairn
