#include "worker/model.h"

#include "worker/click_data.h"

namespace cairn {
namespace {

Output Dense(Graph* g, Output in, int64_t fan_in, int64_t fan_out, const std::string& scope, uint64_t seed) {
  VariableOptions w;
  w.name = scope + "/W";
  w.shape = {fan_in, fan_out};
  w.init.kind = InitKind::kGlorotUniform;
  w.init.seed = seed;
  VariableOptions b;
  b.name = scope + "/b";
  b.shape = {fan_out};
  return g->Add(g->MatMul(in, g->Variable(w)), g->Variable(b), scope + "/z");
}

Output Activation(Graph* g, const std::string& kind, Output x, const std::string& name) {
  if (kind == "sigmoid") return g->Sigmoid(x, name);
  if (kind == "tanh") return g->Tanh(x, name);
  return g->Relu(x, name);
}

// learning_rate, global_step and the op that sets the learning rate.
void AddTrainingState(Graph* g, double learning_rate, Model* m) {
  VariableOptions lr;
  lr.name = "learning_rate";
  lr.shape = {};
  lr.trainable = false;
  lr.init.kind = InitKind::kConstant;
  lr.init.value = learning_rate;
  m->learning_rate = g->Variable(lr);
  m->new_learning_rate = g->Placeholder("new_learning_rate", DType::kFloat32, {});
  m->set_learning_rate = g->Assign(m->learning_rate, m->new_learning_rate, "set_learning_rate");

  VariableOptions ready;
  ready.name = "cairn/chief_ready";
  ready.shape = {};
  ready.dtype = DType::kInt64;
  ready.trainable = false;
  m->chief_ready = g->Variable(ready);
  Tensor one(DType::kInt64, {});
  one.data<int64_t>()[0] = 1;
  m->set_chief_ready = g->Assign(m->chief_ready, g->Constant("cairn/one", one), "cairn/set_chief_ready");
  m->new_chief_word = g->Placeholder("cairn/new_chief_word", DType::kInt64, {});
  m->set_chief_word = g->Assign(m->chief_ready, m->new_chief_word, "cairn/set_chief_word");

  VariableOptions step;
  step.name = "global_step";
  step.shape = {};
  step.dtype = DType::kInt64;
  step.trainable = false;
  m->global_step = g->Variable(step);
}

void AddNormalization(Graph* g, int64_t features, Model* m) {
  VariableOptions mean;
  mean.name = "normalize/mean";
  mean.shape = {features};
  mean.trainable = false;
  VariableOptions inv;
  inv.name = "normalize/inv_std";
  inv.shape = {features};
  inv.trainable = false;
  inv.init.kind = InitKind::kOnes;
  m->mean = g->Variable(mean);
  m->inv_std = g->Variable(inv);
  m->new_mean = g->Placeholder("normalize/new_mean", DType::kFloat32, {features});
  m->new_inv_std = g->Placeholder("normalize/new_inv_std", DType::kFloat32, {features});
  m->set_mean = g->Assign(m->mean, m->new_mean, "normalize/set_mean");
  m->set_inv_std = g->Assign(m->inv_std, m->new_inv_std, "normalize/set_inv_std");
}

// The wide (logistic) part of the click models: [-1, 1].
Output WideLogit(Graph* g, const Model& m) {
  SparseTableOptions table;
  table.name = "click/wide";
  table.dim = 1;
  Output bag = g->EmbeddingBag(g->SparseTable(table), m.ids, Combiner::kSum, "click/wide/bag");
  VariableOptions w;
  w.name = "click/wide/dense_w";
  w.shape = {kClickCounts, 1};
  VariableOptions b;
  b.name = "click/wide/b";
  b.shape = {1};
  return g->Add(g->Add(bag, g->MatMul(m.x, g->Variable(w))), g->Variable(b), "click/wide/logit");
}

// The deep part of click_wide_deep: [-1, 1].
StatusOr<Output> DeepLogit(const ModelConfig& c, Graph* g, Model* m) {
  if (c.embedding_dim < 1 || c.embedding_dim > 1024) return InvalidArgument("model.embedding_dim: must be in [1, 1024]");
  AddNormalization(g, kClickCounts, m);
  SparseTableOptions table;
  table.name = "click/embedding";
  table.dim = static_cast<int32_t>(c.embedding_dim);
  table.init.kind = InitKind::kUniform;
  table.init.minval = -0.05;
  table.init.maxval = 0.05;
  table.init.seed = c.seed;
  // One bag of one id per (example, slot): a missing id's row is zeros.
  Output rows = g->EmbeddingBag(g->SparseTable(table), g->Reshape(m->ids, {-1, 1}), Combiner::kSum, "click/embed");
  Output embedded = g->Reshape(rows, {-1, kClickSlots * c.embedding_dim});
  Output h = g->Concat({embedded, g->Mul(g->Sub(m->x, m->mean), m->inv_std, "normalized")}, 1, "click/deep/in");
  int64_t width = kClickSlots * c.embedding_dim + kClickCounts;
  for (size_t i = 0; i < c.hidden.size(); ++i) {
    if (c.hidden[i] < 1) return InvalidArgument("model.hidden: layer sizes must be >= 1");
    const std::string scope = "click/deep/dense_" + std::to_string(i);
    h = Activation(g, c.activation, Dense(g, h, width, c.hidden[i], scope, c.seed + i), scope + "/out");
    width = c.hidden[i];
  }
  return Dense(g, h, width, 1, "click/deep/output", c.seed + 1000);
}

Status BuildClickModel(const ModelConfig& c, Graph* g, Model* m) {
  if (c.activation != "relu" && c.activation != "sigmoid" && c.activation != "tanh") {
    return InvalidArgument("model.activation: unknown activation '" + c.activation + "' (relu, sigmoid, tanh)");
  }
  m->click = true;
  m->x = g->Placeholder("dense", DType::kFloat32, {-1, kClickCounts});
  m->ids = g->Placeholder("ids", DType::kInt64, {-1, kClickSlots});
  m->y = g->Placeholder("labels", DType::kFloat32, {-1});
  Output logit = WideLogit(g, *m);
  if (c.kind == "click_wide_deep") {
    ASSIGN_OR_RETURN(Output deep, DeepLogit(c, g, m));
    logit = g->Add(logit, deep);
  }
  m->output = g->Reshape(logit, {-1}, "logits");
  m->loss = g->ReduceMean(g->SigmoidCrossEntropyWithLogits(m->output, m->y), "loss");
  return Status::OK();
}

}  // namespace

bool IsClickModel(const std::string& kind) { return kind == "click_logistic" || kind == "click_wide_deep"; }

std::string WorkerStateName(int worker) { return "cairn/worker_state/" + std::to_string(worker); }

Status AddWorkerStates(int num_workers, Graph* g, Model* m) {
  if (num_workers < 1) return InvalidArgument("a job needs at least one worker");
  m->new_worker_state = g->Placeholder("cairn/new_worker_state", DType::kInt64, {4});
  for (int w = 0; w < num_workers; ++w) {
    VariableOptions state;
    state.name = WorkerStateName(w);
    state.shape = {4};
    state.dtype = DType::kInt64;
    state.trainable = false;
    m->worker_state.push_back(g->Variable(state));
    m->set_worker_state.push_back(g->Assign(m->worker_state.back(), m->new_worker_state, state.name + "/set"));
  }
  return g->status();
}

StatusOr<Model> BuildModel(const ModelConfig& c, double learning_rate, Graph* g) {
  if (c.features < 1 || c.classes < 2) return InvalidArgument("model needs features >= 1 and classes >= 2");
  Model m;
  AddTrainingState(g, learning_rate, &m);
  if (IsClickModel(c.kind)) {
    RETURN_IF_ERROR(BuildClickModel(c, g, &m));
  } else if (c.kind == "linear_regression") {
    m.x = g->Placeholder("x", DType::kFloat32, {-1, c.features});
    m.y = g->Placeholder("y", DType::kFloat32, {-1, 1});
    VariableOptions w;
    w.name = "linear/w";
    w.shape = {c.features, 1};
    VariableOptions b;
    b.name = "linear/b";
    b.shape = {1};
    m.weights = g->Variable(w);
    m.output = g->Add(g->MatMul(m.x, m.weights), g->Variable(b), "prediction");
    Output half = g->Constant("half", Tensor::FromVector({}, {0.5f}));
    m.loss = g->Mul(g->ReduceMean(g->Square(g->Sub(m.output, m.y))), half, "loss");
  } else if (c.kind == "softmax_regression" || c.kind == "mlp") {
    if (c.activation != "relu" && c.activation != "sigmoid" && c.activation != "tanh") {
      return InvalidArgument("model.activation: unknown activation '" + c.activation + "' (relu, sigmoid, tanh)");
    }
    m.classifier = true;
    m.x = g->Placeholder("x", DType::kFloat32, {-1, c.features});
    m.y = g->Placeholder("labels", DType::kInt64, {-1});
    AddNormalization(g, c.features, &m);
    Output h = g->Mul(g->Sub(m.x, m.mean), m.inv_std, "normalized");
    int64_t width = c.features;
    if (c.kind == "mlp") {
      for (size_t i = 0; i < c.hidden.size(); ++i) {
        if (c.hidden[i] < 1) return InvalidArgument("model.hidden: layer sizes must be >= 1");
        const std::string scope = "dense_" + std::to_string(i);
        h = Activation(g, c.activation, Dense(g, h, width, c.hidden[i], scope, c.seed + i), scope + "/out");
        width = c.hidden[i];
      }
    }
    m.output = Dense(g, h, width, c.classes, "output", c.seed + 1000);
    m.loss = g->ReduceMean(g->SparseSoftmaxCrossEntropyWithLogits(m.output, m.y), "loss");
    m.accuracy = g->Accuracy(m.output, m.y, "accuracy");
  } else {
    return InvalidArgument("model.kind: unknown model '" + c.kind +
                           "' (linear_regression, softmax_regression, mlp, click_logistic, click_wide_deep)");
  }
  MinimizeOptions mo;
  mo.learning_rate = m.learning_rate;
  mo.global_step = m.global_step;
  m.train_op = g->Minimize(m.loss, mo, "train");
  if (!g->status().ok()) return g->status();
  return m;
}

}  // namespace cairn
