// The models a job file can name, built as Graphs:
//   linear_regression   pred = x·w + b, loss = mean((pred - y)²) / 2
//   layers              a list of layers (worker/layers.h): dense,
//                       normalize, batch_norm, dropout, embedding, concat,
//                       add, and a softmax, logistic or regression head
// and presets of `layers` (PresetLayers):
//   softmax_regression  logits = norm(x)·W + b, sparse softmax cross-entropy
//   mlp                 hidden layers act(h·W + b), then logits as above
//   click_logistic      click logs (worker/click_examples.h): logit = the sum
//                       over the 26 slots of a dim-1 row of one sparse table
//                       "click/wide" (keyed by ClickTableId; missing ids
//                       skipped) + the 13 log-count features · W + b;
//                       sigmoid cross-entropy
//   click_wide_deep     that logit (the wide part) + an MLP (hidden, act) over
//                       [one embedding_dim row per slot of the table
//                       "click/embedding" (a missing id: zeros), the
//                       normalized log counts], to one output
// Classifiers normalize their input with per-feature statistics held in
// non-trainable variables ("normalize/mean", "normalize/inv_std") that the
// chief assigns from the training data before training.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/graph.h"

namespace cairn {

// One layer of a model described as a list (ModelConfig::layers; the layer
// kinds and their fields are in worker/layers.h).
struct LayerSpec {
  std::string type;                 // normalize | dense | batch_norm | dropout | embedding | concat | add |
                                    // softmax | logistic | regression (the last three: heads)
  std::string name;                 // its variables' scope and what `inputs` of others call it
  std::vector<std::string> inputs;  // empty: the layer before ("features" for the first)
  int64_t units = 0;                // dense
  std::string activation = "none";  // dense: none | relu | sigmoid | tanh
  bool bias = true;                 // dense
  std::string init = "glorot_uniform";  // dense: glorot_uniform | zeros
  // dense: the variables' names; empty: "<name>/W", "<name>/b" (the click
  // presets keep the names their snapshots have always had).
  std::string weights_name, bias_name;
  std::optional<uint64_t> seed;     // dense, embedding, dropout: unset = model.seed + the layer's position
  double rate = 0.5;                // dropout: the fraction of values zeroed while training
  double momentum = 0.99;           // batch_norm: of the moving statistics, per step of one worker
  double epsilon = 1e-3;            // batch_norm
  int64_t dim = 16;                 // embedding: floats per row
  std::string combiner = "concat";  // embedding: concat (a row per slot, side by side) | sum | mean (over the slots)
  std::vector<int64_t> slots;       // embedding: the slots (columns of "ids") it reads; empty: all
  double init_scale = 0.05;         // embedding: rows start uniform in [-scale, scale) (0: zeros)
};

struct ModelConfig {
  // linear_regression | softmax_regression | mlp | click_logistic | click_wide_deep | layers
  // (all but linear_regression are layer lists: the others are presets,
  // PresetLayers in worker/layers.h)
  std::string kind = "linear_regression";
  std::vector<LayerSpec> layers;           // kind layers
  int64_t slots = 0;                       // categorical slots the data has (click logs: kClickSlots)
  // batch_norm: every worker moves the moving statistics by 1/workers of
  // its batch's pull, so that a step of all workers moves them as one
  // worker's step would.
  int workers = 1;
  int64_t features = 784;                  // click models: kClickCounts
  int64_t classes = 10;                    // classifiers
  std::vector<int64_t> hidden = {256, 128};  // mlp
  std::string activation = "relu";         // mlp, click_wide_deep: relu | sigmoid | tanh
  int64_t embedding_dim = 16;              // click_wide_deep: floats per slot's row
  uint64_t seed = 1;                       // weight initialization
};

// Handles to the nodes a trainer drives.
struct Model {
  // Placeholders: features [-1, features]; labels [-1] int64, targets
  // [-1, 1], or (click models) clicks [-1] float.
  Output x, y;
  Output ids;             // click models: int64 [-1, kClickSlots] table ids, -1 for missing
  Output output;          // logits ([-1] for the click models) or predictions
  Output loss;            // scalar
  Output accuracy;        // classifiers only
  Output train_op;
  // Run with every train step (the graph's UPDATE_OPS: batch
  // normalization's moving statistics).
  std::vector<Output> update_ops;
  // Evaluation's view of the model where it differs from training's (batch
  // normalization by its moving statistics, no dropout); unset: output,
  // loss and accuracy serve both.
  Output eval_output, eval_loss, eval_accuracy;
  // Dropout's int64 scalar seed, fed by the trainer with each train step (a
  // pure function of worker and step, so a resumed step drops the same
  // values); unset without dropout. Evaluation does not read it.
  Output step_seed;
  Output global_step;     // int64 scalar, non-trainable
  Output learning_rate;   // float scalar, non-trainable; sent with every push
  Output set_learning_rate, new_learning_rate;  // Assign op and its placeholder
  // Classifiers and click_wide_deep: the normalization statistics and the
  // ops that set them (unset for the other models).
  Output mean, inv_std, set_mean, set_inv_std, new_mean, new_inv_std;
  Output weights;         // linear_regression: w [features, 1]
  // Set to 1 by the chief once the servers hold what training needs (the
  // normalization statistics); other workers wait for it. Not part of the
  // model's state: snapshots leave it out. Its values are ChiefWord's;
  // set_chief_word assigns the one fed to new_chief_word.
  Output chief_ready, set_chief_ready;
  Output set_chief_word, new_chief_word;
  // Each worker's place in training, one int64 [4] variable per worker
  // (AddWorkerStates): steps run, epoch, step in epoch, shuffling seed.
  // Assigned with every train step, so a snapshot holds the positions that
  // match its weights.
  std::vector<Output> worker_state;
  std::vector<Output> set_worker_state;  // Assign ops, fed new_worker_state
  Output new_worker_state;
  bool classifier = false;
  bool click = false;     // a click model: evaluated by AUC and log loss
};

// Whether `kind` names a click model (trained on click logs).
bool IsClickModel(const std::string& kind);

// What the chief tells the other workers through cairn/chief_ready.
struct ChiefWord {
  static constexpr int64_t kStarting = 0;  // the initial value: start-up (restore, statistics) goes on
  static constexpr int64_t kReady = 1;     // the servers hold the model: train
  static constexpr int64_t kFailed = -1;   // start-up failed (the chief's log says why): give up at once
  // kStopAt + G: ready, and a stop was requested: in sync mode every worker
  // stops once the global step reaches G (one step for all, so that no round
  // waits for a worker that has already stopped).
  static constexpr int64_t kStopAt = 2;
};

// Variable name of worker `worker`'s state ("cairn/worker_state/<worker>").
std::string WorkerStateName(int worker);

// A model of one's own: what a Trainer needs beside the model's graph.
// Build it into an empty graph before anything else (AddTrainingState),
// then the model, setting x, y (and ids), output, loss, train_op (Minimize
// with TrainingMinimizeOptions, so that pushes carry the scheduled learning
// rate and count global steps), classifier + accuracy or click for the
// evaluation's figures, update_ops and the eval_* view if any; then the
// workers' states (AddWorkerStates). An ExampleSource feeds x and y, and
// the Trainer gives that graph everything `cairn train` has: data
// sharding, positions in snapshots, resume, schedules, snapshot cadence,
// sync recovery (launch/examples/custom_model does it).
//
// learning_rate, global_step, cairn/chief_ready and the ops that set them.
Status AddTrainingState(double learning_rate, Graph* graph, Model* model);
// Minimize's options for a model's train op: the learning_rate variable
// and the global_step counter that AddTrainingState made.
MinimizeOptions TrainingMinimizeOptions(const Model& model);

// A model kind of one's own for job files (model.kind) and every launcher:
// builds x, y (and ids), output, loss and what evaluation reads
// (classifier + accuracy, or click; update_ops, eval_*) into `graph`, which
// already holds the training state (AddTrainingState); BuildModel then adds
// the train op. `config` carries the job's model section (seed, hidden,
// classes, ...) and the data's features and slots.
using ModelBuilder = std::function<Status(const ModelConfig& config, Graph* graph, Model* model)>;
// A builder may run on several threads at once (the workers of --local),
// each with its own graph. A model with dropout (step_seed) must give an
// evaluation view (eval_loss) too.
// Registers `kind` (call before any job starts, e.g. first thing in main).
// AlreadyExists for a built-in or already registered kind.
Status RegisterModel(const std::string& kind, ModelBuilder builder);
// Whether `kind` was registered.
bool IsRegisteredModel(const std::string& kind);
// Whether `kind` is one of Cairn's own (linear_regression, layers and its presets).
bool IsBuiltInModel(const std::string& kind);

// Builds the model into `graph` (empty). InvalidArgument for a bad config.
// With `widths` (layer models), also the width of every layer in order.
StatusOr<Model> BuildModel(const ModelConfig& config, double learning_rate, Graph* graph,
                           std::vector<int64_t>* widths = nullptr);
// Adds the per-worker state variables of a `num_workers`-worker job.
Status AddWorkerStates(int num_workers, Graph* graph, Model* model);

}  // namespace cairn
