// BenchWorker: one benchmark worker against a LocalCluster, with its own
// transport and client and one gradient batch made at construction, so a
// bench's timed loop measures the calls and nothing else. Worker 0 connects
// as the chief (it may create the variable); the others as workers.
//
// Depth: with depth N > 1, Push and Pull keep up to N calls in flight
// (PsClient::PushAsync / PullAsync): each starts one call and, once N are in
// flight, waits for the oldest, so in steady state each returns after one
// completed call. Drain waits for the calls still in flight.
//
// Not thread-safe: one thread drives one BenchWorker.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <string>

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
  // Calls at most this many pushes or pulls in flight (>= 1; default 1).
  void set_depth(int depth) { depth_ = depth < 1 ? 1 : depth; }
  // Waits for every call still in flight; the first error, if any.
  Status Drain();

 private:
  Status CheckPulled(const StatusOr<std::map<std::string, Tensor>>& values) const;

  AsioTransport transport_;
  PsClient client_;  // uses transport_
  const VariableSpec spec_;
  PushBatch batch_;
  int depth_ = 1;
  std::deque<PendingCall<Status>> pushes_;                                  // in flight, oldest first
  std::deque<PendingCall<StatusOr<std::map<std::string, Tensor>>>> pulls_;  // in flight, oldest first
};

}  // namespace cairn
