// BenchWorker: one benchmark worker against a LocalCluster, with its own
// transport and client and one gradient batch made at construction, so a
// bench's timed loop measures the calls and nothing else. Worker 0 connects
// as the chief (it may create the variable); the others as workers.
//
// Not thread-safe: one thread drives one BenchWorker.
#pragma once

#include <chrono>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "common/placement.h"
#include "common/status.h"
#include "ps/local_cluster.h"
#include "worker/ps_client.h"

namespace cairn {

class BenchWorker {
 public:
  // `loop` and `cluster` must outlive the worker.
  BenchWorker(EventLoop& loop, const LocalCluster& cluster, int id, const VariableSpec& spec,
              std::chrono::milliseconds timeout, PlacementOptions placement = PlacementOptions{});

  // Declares the variable (idempotent on the servers): that is how a client
  // learns its placement. Every worker calls it; the chief's creates.
  Status Create(const OptimizerSpec& optimizer);

  // One push of the gradient batch (asynchronous SGD steps: gradients only).
  Status Push();
  // One pull of the variable, checked for its size.
  Status Pull();
  Status PushPull();

 private:
  AsioTransport transport_;
  PsClient client_;  // uses transport_
  const VariableSpec spec_;
  PushBatch batch_;
};

}  // namespace cairn
