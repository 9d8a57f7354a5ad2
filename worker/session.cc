#include "worker/session.h"

#include "worker/saver.h"

#include "worker/ops.h"

namespace cairn {
namespace {

bool ShapeFits(const Shape& declared, const Shape& actual) {
  if (declared.size() != actual.size()) return false;
  for (size_t i = 0; i < declared.size(); ++i) {
    if (declared[i] != -1 && declared[i] != actual[i]) return false;
  }
  return true;
}

Status NeverInitialized(const std::string& name) {
  return FailedPrecondition("variable '" + name +
                            "' was never initialized: call Session::Initialize (or restore a snapshot) first");
}

}  // namespace

StatusOr<std::unique_ptr<Session>> Session::Create(const Graph* graph, VariableStore* store, SessionOptions options) {
  if (!graph->status().ok()) {
    return FailedPrecondition("the graph has a build error: " + graph->status().message());
  }
  return std::unique_ptr<Session>(new Session(graph, store, std::move(options)));
}

Session::Session(const Graph* graph, VariableStore* store, SessionOptions options)
    : graph_(graph), store_(store), options_(std::move(options)), collections_(graph->DeclaredCollections()) {}

Status Session::Initialize() {
  RETURN_IF_ERROR(store_->Create(graph_->ServerVariables(), options_.optimizer, options_.mode));
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    const Node& n = graph_->node(id);
    if (n.op != OpType::kVariable || !n.variable.local) continue;
    Tensor t(n.dtype, n.shape);
    VariableSpec spec{n.name, n.shape, n.dtype, n.variable.init, false};
    InitializeRows(spec, 0, &t);
    local_values_[id] = std::move(t);
  }
  initialized_ = true;
  return Status::OK();
}

std::vector<std::string> Session::GetCollection(const std::string& name) const {
  auto it = collections_.find(name);
  return it == collections_.end() ? std::vector<std::string>{} : it->second;
}

std::vector<std::string>& Session::GetCollectionRef(const std::string& name) { return collections_[name]; }

void Session::AddToCollection(const std::string& name, Output node) {
  collections_[name].push_back(graph_->node(node).name);
}

void Session::SetCollections(std::map<std::string, std::vector<std::string>> collections) {
  collections_ = std::move(collections);
}

StatusOr<RestoreResult> Session::Restore(Saver& saver, const RestoreOptions& options) {
  return saver.Restore(options);
}

std::vector<std::string> Session::CollectionNames() const {
  std::vector<std::string> out;
  for (const auto& [name, members] : collections_) out.push_back(name);
  return out;
}

Status Session::CheckFeeds(const FeedMap& feeds) const {
  for (const auto& [out, value] : feeds) {
    if (out.node < 0 || out.node >= graph_->num_nodes()) return InvalidArgument("a feed names a node not in the graph");
    const Node& n = graph_->node(out);
    if (n.op != OpType::kPlaceholder) {
      return InvalidArgument("'" + n.name + "' is a " + OpTypeName(n.op) + ", not a placeholder: only placeholders can be fed");
    }
    if (value.dtype() != n.dtype) {
      return InvalidArgument("feed for placeholder '" + n.name + "' is " + DTypeName(value.dtype()) +
                             " but the placeholder is " + DTypeName(n.dtype));
    }
    if (!ShapeFits(n.shape, value.shape())) {
      return InvalidArgument("feed for placeholder '" + n.name + "' has shape " + ShapeString(value.shape()) +
                             " but the placeholder is " + ShapeString(n.shape));
    }
  }
  return Status::OK();
}

std::vector<bool> Session::Needed(const std::vector<Output>& fetches) const {
  std::vector<bool> needed(graph_->num_nodes(), false);
  std::vector<int> stack;
  for (Output f : fetches) stack.push_back(f.node);
  while (!stack.empty()) {
    const int id = stack.back();
    stack.pop_back();
    if (needed[id]) continue;
    needed[id] = true;
    const Node& n = graph_->node(id);
    for (int in : n.inputs) stack.push_back(in);
    if (n.op == OpType::kMinimize) {
      if (n.minimize.learning_rate.valid()) stack.push_back(n.minimize.learning_rate.node);
    }
  }
  return needed;
}

StatusOr<Tensor> Session::Run(Output fetch, const FeedMap& feeds) {
  ASSIGN_OR_RETURN(std::vector<Tensor> out, Run(std::vector<Output>{fetch}, feeds));
  return out[0];
}

StatusOr<std::vector<Tensor>> Session::Run(const std::vector<Output>& fetches, const FeedMap& feeds) {
  int minimizes = 0;
  for (Output f : fetches) {
    if (f.node < 0 || f.node >= graph_->num_nodes()) return InvalidArgument("a fetch names a node not in the graph");
    if (graph_->node(f).op == OpType::kMinimize) ++minimizes;
  }
  if (minimizes > 1) return InvalidArgument("one Run can run at most one Minimize op");
  RETURN_IF_ERROR(CheckFeeds(feeds));
  const std::vector<bool> needed = Needed(fetches);

  std::vector<Tensor> values(graph_->num_nodes());
  PushBatch batch;
  RETURN_IF_ERROR(Evaluate(needed, feeds, &values, &batch));
  for (Output f : fetches) {
    const Node& n = graph_->node(f);
    if (n.op == OpType::kMinimize) RETURN_IF_ERROR(Differentiate(n, needed, values, &batch));
  }
  if (!batch.empty()) RETURN_IF_ERROR(store_->Push(batch));

  std::vector<Tensor> out;
  for (Output f : fetches) {
    // Constants belong to the shared graph and local variables to this
    // session: hand out copies, so a caller's writes cannot reach them.
    const Node& n = graph_->node(f);
    const bool shared = n.op == OpType::kConstant || (n.op == OpType::kVariable && n.variable.local);
    out.push_back(shared ? values[f.node].Clone() : values[f.node]);
  }
  return out;
}

Status Session::Evaluate(const std::vector<bool>& needed, const FeedMap& feeds, std::vector<Tensor>* values,
                         PushBatch* batch) {
  // Global variables first, in one Pull.
  std::vector<std::string> pull;
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    const Node& n = graph_->node(id);
    if (!needed[id] || n.op != OpType::kVariable) continue;
    if (!initialized_) return NeverInitialized(n.name);
    if (!n.variable.local) pull.push_back(n.name);
  }
  std::map<std::string, Tensor> pulled;
  if (!pull.empty()) {
    StatusOr<std::map<std::string, Tensor>> r = store_->Pull(pull);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) return r.status().WithContext("a variable was never initialized");
      return r.status();
    }
    pulled = std::move(*r);
  }
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    if (!needed[id]) continue;
    const Node& n = graph_->node(id);
    Tensor& v = (*values)[id];
    switch (n.op) {
      case OpType::kPlaceholder: {
        auto it = feeds.find(Output{id});
        if (it == feeds.end()) return InvalidArgument("placeholder '" + n.name + "' must be fed");
        v = it->second;
        break;
      }
      case OpType::kConstant: v = n.value; break;
      case OpType::kVariable: v = n.variable.local ? local_values_.at(id) : pulled.at(n.name); break;
      case OpType::kMinimize: v = Tensor(); break;
      case OpType::kAssign:
      case OpType::kAssignAdd: RETURN_IF_ERROR(EvaluateAssign(n, values, batch)); break;
      default: {
        std::vector<const Tensor*> in;
        for (int i : n.inputs) in.push_back(&(*values)[i]);
        ASSIGN_OR_RETURN(v, ComputeForward(n, in));
      }
    }
  }
  return Status::OK();
}

Status Session::EvaluateAssign(const Node& n, std::vector<Tensor>* values, PushBatch* batch) {
  const Node& var = graph_->node(n.inputs[0]);
  const Tensor& input = (*values)[n.inputs[1]];
  if (input.num_elements() != NumElements(var.shape)) {
    return InvalidArgument(std::string(OpTypeName(n.op)) + " '" + n.name + "': value of shape " +
                           ShapeString(input.shape()) + " for variable '" + var.name + "' of shape " +
                           ShapeString(var.shape));
  }
  // The value keeps the variable's shape, whatever shape it was computed in.
  Tensor value = Tensor::View(input.dtype(), var.shape, input.owner(), const_cast<void*>(input.raw()));
  Tensor result;
  if (n.op == OpType::kAssign) {
    result = value.Clone();
  } else {
    result = (*values)[var.id].Clone();
    if (result.dtype() == DType::kInt64) {
      for (int64_t i = 0; i < result.num_elements(); ++i) result.data<int64_t>()[i] += value.data<int64_t>()[i];
    } else {
      result.flat() += value.flat();
    }
  }
  if (var.variable.local) {
    local_values_[var.id] = result;
  } else if (n.op == OpType::kAssign || batch->assigns.count(var.name)) {
    // After an Assign in this Run, the variable's final value is what counts.
    batch->assign_adds.erase(var.name);
    batch->assigns[var.name] = result.Clone();
  } else {
    auto it = batch->assign_adds.find(var.name);
    if (it == batch->assign_adds.end()) {
      batch->assign_adds[var.name] = value.Clone();
    } else if (value.dtype() == DType::kInt64) {
      for (int64_t i = 0; i < value.num_elements(); ++i) it->second.data<int64_t>()[i] += value.data<int64_t>()[i];
    } else {
      it->second.flat() += value.flat();
    }
  }
  // Later ops of this Run (another AssignAdd, say) see the new value.
  (*values)[var.id] = result;
  (*values)[n.id] = std::move(result);
  return Status::OK();
}

Status Session::Differentiate(const Node& minimize, const std::vector<bool>& needed,
                              const std::vector<Tensor>& values, PushBatch* batch) const {
  const int loss = minimize.inputs[0];
  std::vector<Tensor> grads(graph_->num_nodes());
  Tensor one(DType::kFloat32, {});
  one.data<float>()[0] = 1.0f;
  grads[loss] = one;
  for (int id = loss; id >= 0; --id) {
    if (!needed[id] || grads[id].num_elements() == 0) continue;
    const Node& n = graph_->node(id);
    if (!IsDifferentiable(n.op)) continue;
    std::vector<const Tensor*> in;
    std::vector<Tensor> input_grads(n.inputs.size());
    for (int i : n.inputs) in.push_back(&values[i]);
    RETURN_IF_ERROR(ComputeBackward(n, in, values[id], grads[id], &input_grads));
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (input_grads[k].num_elements() == 0) continue;
      Tensor& g = grads[n.inputs[k]];
      if (g.num_elements() == 0) g = std::move(input_grads[k]);
      else g.flat() += input_grads[k].flat();
    }
  }
  std::vector<int> vars;
  for (Output v : minimize.minimize.var_list) vars.push_back(v.node);
  if (vars.empty()) {
    for (int id = 0; id <= loss; ++id) {
      const Node& n = graph_->node(id);
      if (n.op == OpType::kVariable && n.variable.trainable && !n.variable.local) vars.push_back(id);
    }
  }
  for (int id : vars) {
    const Node& n = graph_->node(id);
    if (grads[id].num_elements() == 0) continue;  // the loss does not depend on it
    batch->gradients[n.name] = grads[id];
  }
  if (batch->gradients.empty()) {
    return InvalidArgument("Minimize '" + minimize.name + "': no gradients reach any variable from loss '" +
                           graph_->node(loss).name + "'");
  }
  batch->train_step = true;
  if (minimize.minimize.learning_rate.valid()) {
    const Tensor& lr = values[minimize.minimize.learning_rate.node];
    if (lr.dtype() != DType::kFloat32 || lr.num_elements() != 1) {
      return InvalidArgument("Minimize '" + minimize.name + "': learning_rate must be a float32 scalar");
    }
    batch->learning_rate = lr.data<float>()[0];
    if (!(batch->learning_rate >= 0)) {
      return InvalidArgument("Minimize '" + minimize.name + "': learning rate " +
                             std::to_string(batch->learning_rate) + " is negative");
    }
  }
  if (minimize.minimize.global_step.valid()) batch->global_step = graph_->node(minimize.minimize.global_step).name;
  return Status::OK();
}

}  // namespace cairn
