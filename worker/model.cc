#include "worker/model.h"

#include "common/registry.h"
#include "worker/click_data.h"
#include "worker/layers.h"

namespace cairn {

Status AddTrainingState(double learning_rate, Graph* g, Model* m) {
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
  return g->status();
}

MinimizeOptions TrainingMinimizeOptions(const Model& m) {
  MinimizeOptions mo;
  mo.learning_rate = m.learning_rate;
  mo.global_step = m.global_step;
  return mo;
}

namespace {

Registry<ModelBuilder>& Models() {
  static auto* models = new Registry<ModelBuilder>;  // never destroyed: read by threads until exit
  return *models;
}

}  // namespace

bool IsBuiltInModel(const std::string& kind) {
  return kind == "linear_regression" || kind == "layers" || kind == "softmax_regression" || kind == "mlp" ||
         IsClickModel(kind);
}

Status RegisterModel(const std::string& kind, ModelBuilder builder) {
  if (kind.empty() || !builder) return InvalidArgument("RegisterModel: a model kind needs a name and a builder");
  if (IsBuiltInModel(kind)) return AlreadyExists("model kind '" + kind + "' is built in");
  return Models().Add(kind, std::move(builder)).WithContext("model kind");
}

bool IsRegisteredModel(const std::string& kind) { return static_cast<bool>(Models().Find(kind)); }

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

StatusOr<Model> BuildModel(const ModelConfig& c, double learning_rate, Graph* g, std::vector<int64_t>* widths) {
  if (c.features < 1 || c.classes < 2) return InvalidArgument("model needs features >= 1 and classes >= 2");
  Model m;
  RETURN_IF_ERROR(AddTrainingState(learning_rate, g, &m));
  if (c.kind == "linear_regression") {
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
  } else if (IsBuiltInModel(c.kind)) {
    if (c.kind != "layers" && c.activation != "relu" && c.activation != "sigmoid" && c.activation != "tanh") {
      return InvalidArgument("model.activation: unknown activation '" + c.activation + "' (relu, sigmoid, tanh)");
    }
    for (int64_t h : c.hidden) {
      if (c.kind != "layers" && h < 1) return InvalidArgument("model.hidden: layer sizes must be >= 1");
    }
    if (IsClickModel(c.kind) && (c.embedding_dim < 1 || c.embedding_dim > 1024)) {
      return InvalidArgument("model.embedding_dim: must be in [1, 1024]");
    }
    ModelConfig preset = c;
    if (IsClickModel(c.kind)) preset.slots = kClickSlots, preset.features = kClickCounts;
    RETURN_IF_ERROR(BuildLayers(preset, g, &m, widths));
  } else if (ModelBuilder builder = Models().Find(c.kind)) {
    RETURN_IF_ERROR(builder(c, g, &m).WithContext("model.kind " + c.kind));
    if (!m.loss.valid()) return InvalidArgument("model.kind " + c.kind + ": the builder set no loss");
    if (m.step_seed.valid() && !m.eval_loss.valid()) {
      return InvalidArgument("model.kind " + c.kind +
                             ": a model with dropout (step_seed) needs an evaluation view without it (eval_loss, "
                             "eval_output)");
    }
  } else {
    return InvalidArgument("model.kind: unknown model '" + c.kind +
                           "' (linear_regression, softmax_regression, mlp, click_logistic, click_wide_deep, layers)");
  }
  m.train_op = g->Minimize(m.loss, TrainingMinimizeOptions(m), "train");
  if (!g->status().ok()) return g->status();
  return m;
}

}  // namespace cairn
