// OptimizerSpec: which update rule a server applies to a trainable
// variable, with its hyper-parameters; and the slot table, which says what
// state that rule keeps beside each shard.
//
// The slot table is plain data, so that anyone who describes a snapshot (the
// chief writing a manifest, a restore checking one) knows the slot names
// without building an optimizer: ps/optimizer.h takes its slots from here.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "common/wire_archive.h"

namespace cairn {

struct OptimizerSpec {
  std::string kind = "sgd";  // sgd | momentum | adagrad | adam | ftrl
  double learning_rate = 0.01;
  double momentum = 0.9;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7;
  double initial_accumulator = 0.1;
  double l1 = 0.0, l2 = 0.0, lr_power = -0.5;

  template <class A> void save(A& ar) const {
    ar(kind, learning_rate, momentum, nesterov, beta1, beta2, epsilon, initial_accumulator, l1, l2, lr_power);
  }
  template <class A> void load(A& ar) {
    LoadString(ar, kind, 32, "optimizer kind");
    ar(learning_rate, momentum);
    LoadBool(ar, nesterov, "nesterov");
    ar(beta1, beta2, epsilon, initial_accumulator, l1, l2, lr_power);
  }
  bool operator==(const OptimizerSpec&) const = default;
};

struct SlotDef {
  std::string name;      // "m", "v", "momentum", "accumulator", "linear", "beta1_power", ...
  bool scalar = false;   // one value per shard ([1]) instead of one per element
  float initial = 0.0f;  // initial value of every element
  bool operator==(const SlotDef&) const = default;
};

// What an optimizer keeps per shard. A slot's full name is
// "<variable>/<name>/<slot>", e.g. "dense/W/Adam/m".
struct SlotTable {
  std::string name;            // "SGD", "Momentum", "Adagrad", "Adam" or "Ftrl"
  std::vector<SlotDef> slots;  // in the order the optimizer receives them
};

// The slot table of `spec.kind`; InvalidArgument for an unknown kind.
// Hyper-parameters are not checked here (ps/optimizer.h does), only read for
// initial values (Adagrad's accumulator, Adam's beta powers).
StatusOr<SlotTable> SlotTableOf(const OptimizerSpec& spec);

}  // namespace cairn
