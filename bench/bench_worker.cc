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

Status BenchWorker::Push() { return client_.Push(batch_); }

Status BenchWorker::Pull() {
  ASSIGN_OR_RETURN(auto values, client_.Pull({spec_.name}));
  auto it = values.find(spec_.name);
  if (it == values.end() || it->second.byte_size() != spec_.byte_size()) {
    return DataLoss("pull of '" + spec_.name + "' returned the wrong value");
  }
  return Status::OK();
}

Status BenchWorker::PushPull() {
  RETURN_IF_ERROR(Push());
  return Pull();
}

}  // namespace cairn
