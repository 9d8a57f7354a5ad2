// Models described as a list of layers (model.kind: layers in a job file):
// the graph a C++ user would build by hand, with the inputs, heads and
// handles a Trainer drives.
//
// Inputs: "features" (float [n, model.features]: pixels, or the click logs'
// log counts) and "ids" (int64 [n, model.slots]: the click logs'
// categorical ids, -1 for a missing one). Each layer reads the layer before
// it (the first reads "features") unless it names its `inputs` (layers by
// name, or the two inputs). Layers, each [n, width] float:
//
//   normalize   (x - mean) * inv_std with the data's per-feature statistics,
//               non-trainable variables "<name>/mean", "<name>/inv_std" the
//               chief sets before training (one per model; of "features")
//   dense       act(x W + b): units, activation (none | relu | sigmoid |
//               tanh), bias, init (glorot_uniform | zeros), seed; variables
//               "<name>/W", "<name>/b"
//   batch_norm  (x - mean) / sqrt(var + epsilon) * gamma + beta, with the
//               batch's mean and variance while training and the moving
//               ones ("<name>/moving_mean", "<name>/moving_variance",
//               non-trainable, in every snapshot) at evaluation. The train
//               step also moves them (Model::update_ops):
//               moving += (1 - momentum) / workers * (batch - moving),
//               with `moving` as the worker pulled it: exact in sync mode
//               (a round adds the mean over the workers' batches; after
//               missing_workers: continue drops a worker, a round moves
//               the statistics by arrived / workers of that); in async and
//               ssp mode `moving` may be a step or more old, so job files
//               there require momentum >= 0.9 (a faster delayed average can
//               oscillate).
//   dropout     zeroes a `rate` fraction of values while training (scaling
//               the rest by 1 / (1 - rate)); the identity at evaluation. The
//               mask is a pure function of (seed, worker, step): a resumed
//               step drops what it dropped the first time.
//   embedding   rows of the sparse table "<name>" (dim, init_scale, seed)
//               for each slot of "ids" it reads (slots: a list of
//               columns; all by default): combiner concat gives [n, slots
//               * dim] (a missing id: zeros), sum or mean pool them to
//               [n, dim]. One table per slot is one layer per slot.
//   concat      its inputs side by side
//   add         the sum of inputs of one width
//
// The last layer is a head, which takes the logits (or predictions) and
// gives the loss: softmax (width model.classes, int64 labels; accuracy),
// logistic (width 1, float clicks; AUC and log loss) or regression (width
// 1, float targets; half the mean squared error).
//
// An error names the layer (model.layers[i] (type 'name')) and the field.
#pragma once

#include <vector>

#include "common/status.h"
#include "worker/graph.h"
#include "worker/model.h"

namespace cairn {

// The layer lists of the built-in kinds softmax_regression, mlp,
// click_logistic and click_wide_deep, from the config's hidden,
// activation, classes, embedding_dim and seed. InvalidArgument for another
// kind.
StatusOr<std::vector<LayerSpec>> PresetLayers(const ModelConfig& config);

// Builds config.layers (or the preset of config.kind) into `graph` and
// sets `model`'s inputs, outputs, loss and the handles of normalization,
// update ops, evaluation and dropout; the caller adds the train op. With
// `widths`, also the width of every layer in order.
Status BuildLayers(const ModelConfig& config, Graph* graph, Model* model, std::vector<int64_t>* widths = nullptr);

}  // namespace cairn
