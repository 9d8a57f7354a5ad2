// The models a job file can name, built as Graphs:
//   linear_regression   pred = x·w + b, loss = mean((pred - y)²) / 2
//   softmax_regression  logits = norm(x)·W + b, sparse softmax cross-entropy
//   mlp                 hidden layers act(h·W + b), then logits as above
//   click_logistic      click logs (worker/click_examples.h): logit = the sum
//                       over the 26 slots of a dim-1 row of one sparse table
//                       "click/wide" (keyed by ClickTableId; missing ids
//                       skipped) + the 13 log-count features · w + b;
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
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/graph.h"

namespace cairn {

struct ModelConfig {
  // linear_regression | softmax_regression | mlp | click_logistic | click_wide_deep
  std::string kind = "linear_regression";
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

// Builds the model into `graph` (empty). InvalidArgument for a bad config.
StatusOr<Model> BuildModel(const ModelConfig& config, double learning_rate, Graph* graph);
// Adds the per-worker state variables of a `num_workers`-worker job.
Status AddWorkerStates(int num_workers, Graph* graph, Model* model);

}  // namespace cairn
