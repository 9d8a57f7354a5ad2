// The three PsClient calls the benchmark makes, written against either of
// the two PsClient APIs:
//   committed:    PsClient(transport, placement, options), CreateVariables(optimizer),
//                 Push(map of gradients);
//   in progress:  PsClient(transport, options with .placement),
//                 Create(specs, optimizer, mode), Push(PushBatch).
// The benchmark is linked into `cairn`, which the tests run, so it must build
// on both sides of that change. Once the new API is committed, keep each
// function's second branch and delete the detection.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "common/placement.h"
#include "common/status.h"
#include "common/tensor.h"
#include "common/transport.h"
#include "common/variable_spec.h"
#include "worker/ps_client.h"

namespace cairn::bridge {

// The parameter type of a one-argument member function.
template <class F> struct ArgOf;
template <class C, class A> struct ArgOf<Status (C::*)(const A&)> { using type = A; };

// A client for worker `id` that holds the one variable `spec`, placed by
// `placement`.
template <class Options = PsClientOptions>
StatusOr<std::unique_ptr<PsClient>> MakeClient(Transport* transport, const VariableSpec& spec, int32_t id,
                                               std::chrono::milliseconds timeout, const PlacementOptions& placement) {
  Options options;
  options.worker_id = id;
  options.timeout = timeout;
  if constexpr (requires { options.placement; }) {
    options.placement = placement;
    return std::make_unique<PsClient>(transport, options);
  } else {
    ASSIGN_OR_RETURN(Placement p, Placement::Compute({spec}, transport->num_servers(), placement));
    return std::make_unique<PsClient>(transport, std::move(p), options);
  }
}

// Declares `spec` on its servers with `optimizer` (asynchronous training).
template <class Client>
Status CreateVariable(Client& client, const VariableSpec& spec, const OptimizerSpec& optimizer) {
  if constexpr (requires { client.CreateVariables(optimizer); }) {
    return client.CreateVariables(optimizer);
  } else {
    return client.Create({spec}, optimizer, {});
  }
}

// Pushes `grads` (whole variables) to be applied by each variable's optimizer.
template <class Client>
Status PushGradients(Client& client, const std::map<std::string, Tensor>& grads) {
  if constexpr (requires { client.Push(grads); }) {
    return client.Push(grads);
  } else {
    typename ArgOf<decltype(&Client::Push)>::type batch;
    batch.gradients = grads;
    return client.Push(batch);
  }
}

}  // namespace cairn::bridge
