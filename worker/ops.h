// The kernels behind a Graph's ops: forward values and reverse-mode
// gradients, on Eigen. Stateless; Session decides what runs when.
#pragma once

#include <vector>

#include "common/status.h"
#include "common/tensor.h"
#include "worker/graph.h"

namespace cairn {

// The value of `node` from its inputs' values (in node.inputs order).
// Placeholders, constants, variables and Minimize are not computed here.
// InvalidArgument (naming the node) for runtime shape or label errors.
StatusOr<Tensor> ComputeForward(const Node& node, const std::vector<const Tensor*>& inputs);

// Given d(loss)/d(output), adds d(loss)/d(input i) into (*input_grads)[i]
// for every differentiable input (an empty Tensor there is treated as zero
// and replaced). Non-differentiable inputs (labels) are left alone.
Status ComputeBackward(const Node& node, const std::vector<const Tensor*>& inputs, const Tensor& output,
                       const Tensor& grad, std::vector<Tensor>* input_grads);

// True if gradients flow through this op to its inputs.
bool IsDifferentiable(OpType op);

}  // namespace cairn
