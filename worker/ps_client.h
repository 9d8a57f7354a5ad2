// PsClient: a worker's view of the parameter servers.
//
// Knows the placement, so callers name whole variables: Pull gathers a
// variable's slices from every server that holds one and reassembles them;
// Push slices a gradient by rows and sends each server its part. Requests to
// different servers go out in parallel; each call waits at most
// options.timeout (reconnecting and re-sending inside that time, see
// AsioTransport).
//
// Thread-safe as long as the Transport is.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/messages.h"
#include "common/placement.h"
#include "common/status.h"
#include "common/tensor.h"
#include "common/transport.h"

namespace cairn {

struct PsClientOptions {
  int32_t worker_id = 0;                        // stamped on pushes
  std::chrono::milliseconds timeout{30000};     // deadline of each call
};

class PsClient {
 public:
  // `transport` is not owned and must outlive the client.
  PsClient(Transport* transport, Placement placement, PsClientOptions options = {});

  const Placement& placement() const { return placement_; }

  // Declares every variable of the placement on its servers, with
  // `optimizer`. Idempotent; a conflicting earlier declaration is an error.
  Status CreateVariables(const OptimizerSpec& optimizer);

  // The current values of `names`, each reassembled whole.
  StatusOr<std::map<std::string, Tensor>> Pull(const std::vector<std::string>& names);

  // Sends gradients (each of its variable's full shape) to the servers.
  Status Push(const std::map<std::string, Tensor>& grads);

  // The server's counters.
  StatusOr<StatsReply> Stats(int server);

 private:
  Deadline NextDeadline() const { return Clock::now() + options_.timeout; }

  Transport* const transport_;
  const Placement placement_;
  const PsClientOptions options_;
  std::atomic<uint64_t> next_sequence_{1};
};

}  // namespace cairn
