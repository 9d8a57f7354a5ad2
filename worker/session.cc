#include "worker/session.h"

#include <algorithm>
#include <utility>

#include "worker/ops.h"
#include "worker/saver.h"

namespace cairn {
namespace {

bool ShapeFits(const Shape& declared, const Shape& actual) {
  if (declared.size() != actual.size()) return false;
  for (size_t i = 0; i < declared.size(); ++i) {
    if (declared[i] != -1 && declared[i] != actual[i]) return false;
  }
  return true;
}

bool IsLookup(const Node& n) { return n.op == OpType::kEmbeddingLookup || n.op == OpType::kEmbeddingBag; }

// The touched rows of a table's gradient, in id order: what a push carries.
SparseRowsUpdate TouchedRows(const TableRows& table, const TableGradient& grad) {
  const int64_t dim = table.rows.dim(1);
  const int64_t touched = std::count(grad.touched.begin(), grad.touched.end(), uint8_t{1});
  SparseRowsUpdate u{Tensor::Uninitialized(DType::kInt64, {touched}),
                     Tensor::Uninitialized(DType::kFloat32, {touched, dim})};
  int64_t k = 0;
  for (size_t r = 0; r < grad.touched.size(); ++r) {
    if (!grad.touched[r]) continue;
    u.ids.data<int64_t>()[k] = table.ids.data<int64_t>()[r];
    u.values.matrix().row(k) = grad.rows.matrix().row(r);
    ++k;
  }
  return u;
}

Status NeverInitialized(const Node& n) {
  const char* kind = n.op == OpType::kSparseTable ? "sparse table '" : "variable '";
  return FailedPrecondition(kind + n.name +
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
    : graph_(graph), store_(store), options_(std::move(options)), collections_(graph->DeclaredCollections()) {
  run_.values.resize(graph_->num_nodes());
}

Status Session::Initialize() {
  RETURN_IF_ERROR(store_->Create(graph_->ServerVariables(), options_.optimizer, options_.mode));
  const std::vector<SparseTableSpec> tables = graph_->SparseTables();
  if (!tables.empty()) RETURN_IF_ERROR(store_->CreateSparse(tables, options_.optimizer));
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
  std::vector<Tensor> out;
  RETURN_IF_ERROR(Run(fetches, feeds, &out));
  return out;
}

void Session::PlanFor(const std::vector<Output>& fetches) {
  if (planned_ && plan_.fetches == fetches) return;
  planned_ = false;
  Plan& p = plan_;
  p.fetches = fetches;
  p.needed = Needed(fetches);
  p.ids = IdsNeeded(p.needed);
  p.pull.clear();
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    const Node& n = graph_->node(id);
    if (p.needed[id] && n.op == OpType::kVariable && !n.variable.local) p.pull.push_back(n.name);
  }
  p.update.clear();
  p.leads.clear();
  for (Output f : fetches) {
    const Node& n = graph_->node(f);
    if (n.op != OpType::kMinimize) continue;
    p.update = UpdateSet(n);
    p.leads = Leads(n.inputs[0], p.update);
  }
  planned_ = true;
}

void Session::ResetRun() {
  RunState& run = run_;
  for (Tensor& v : run.values) v = Tensor();
  run.tables.clear();
  spare_nodes_.Clear(&run.batch);
  run.batch.train_step = false;
  run.batch.learning_rate = -1;
  run.batch.global_step.clear();
  for (auto& [name, value] : run.pulled) value = Tensor();  // the names stay for the next pull
  for (Tensor& g : scratch_grads_) g = Tensor();
}

void Session::SpareNodes::Clear(PushBatch* batch) {
  for (auto* map : {&batch->gradients, &batch->assigns, &batch->assign_adds}) {
    while (!map->empty()) {
      nodes_.push_back(map->extract(map->begin()));
      nodes_.back().mapped() = Tensor();
    }
  }
  batch->sparse_gradients.clear();
}

Tensor& Session::SpareNodes::At(std::map<std::string, Tensor>* map, const std::string& key) {
  auto it = map->find(key);
  if (it != map->end()) return it->second;
  if (nodes_.empty()) return (*map)[key];
  std::map<std::string, Tensor>::node_type node = std::move(nodes_.back());
  nodes_.pop_back();
  node.key() = key;  // reuses the old key's memory
  return map->insert(std::move(node)).position->second;
}

void Session::SpareNodes::Erase(std::map<std::string, Tensor>* map, const std::string& key) {
  auto it = map->find(key);
  if (it == map->end()) return;
  nodes_.push_back(map->extract(it));
  nodes_.back().mapped() = Tensor();
}

Status Session::Run(const std::vector<Output>& fetches, const FeedMap& feeds, std::vector<Tensor>* outputs) {
  int minimizes = 0;
  for (Output f : fetches) {
    if (f.node < 0 || f.node >= graph_->num_nodes()) return InvalidArgument("a fetch names a node not in the graph");
    if (graph_->node(f).op == OpType::kMinimize) ++minimizes;
    if (graph_->node(f).op == OpType::kSparseTable) {
      return InvalidArgument("'" + graph_->node(f).name +
                             "' is a sparse table, which has no value to fetch: fetch a lookup of it");
    }
  }
  if (minimizes > 1) return InvalidArgument("one Run can run at most one Minimize op");
  RETURN_IF_ERROR(CheckFeeds(feeds));
  PlanFor(fetches);

  // Overlap: a Run without a Minimize reads what this session wrote (the
  // pull sent ahead stays for the next step: it is as stale either way).
  if (minimizes == 0) RETURN_IF_ERROR(WaitForPushes());
  RunState& run = run_;
  // However the Run ends, it leaves the session holding none of its tensors.
  struct Reset {
    Session* session;
    ~Reset() { session->ResetRun(); }
  } reset{this};
  RETURN_IF_ERROR(Evaluate(feeds, minimizes > 0, &run));
  if (minimizes > 0 && overlapping() && !plan_.pull.empty()) {
    // The next step's pull goes out now, to be copied while this one's backward runs.
    pull_ahead_.emplace(store_->PullAsync(plan_.pull));
    pull_ahead_names_ = plan_.pull;
  }
  // The last step's pushes are answered before this one's leave (and before
  // backward, which may send some of them).
  RETURN_IF_ERROR(WaitForPushes());
  for (Output f : fetches) {
    const Node& n = graph_->node(f);
    if (n.op == OpType::kMinimize) RETURN_IF_ERROR(Differentiate(n, &run));
  }
  if (!run.batch.empty()) {
    if (minimizes > 0 && overlapping()) {
      pushes_in_flight_.push_back(store_->PushAsync(run.batch));
    } else {
      RETURN_IF_ERROR(store_->Push(run.batch));
    }
  }

  outputs->resize(fetches.size());
  for (size_t i = 0; i < fetches.size(); ++i) {
    // Constants belong to the shared graph and local variables to this
    // session: hand out copies, so a caller's writes cannot reach them.
    const Node& n = graph_->node(fetches[i]);
    const bool shared = n.op == OpType::kConstant || (n.op == OpType::kVariable && n.variable.local);
    (*outputs)[i] = shared ? run.values[n.id].Clone() : run.values[n.id];
  }
  return Status::OK();
}

std::vector<bool> Session::IdsNeeded(const std::vector<bool>& needed) const {
  std::vector<bool> ids(graph_->num_nodes(), false);
  std::vector<int> stack;
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    if (needed[id] && IsLookup(graph_->node(id))) stack.push_back(graph_->node(id).inputs[1]);
  }
  while (!stack.empty()) {
    const int id = stack.back();
    stack.pop_back();
    if (ids[id]) continue;
    ids[id] = true;
    for (int in : graph_->node(id).inputs) stack.push_back(in);
  }
  return ids;
}

Status Session::Flush() {
  if (pull_ahead_) {
    (void)pull_ahead_->Wait();  // stale by now: dropped, its error with it
    pull_ahead_.reset();
  }
  return WaitForPushes();
}

Status Session::WaitForPushes() {
  Status first;
  for (PendingCall<Status>& p : pushes_in_flight_) {
    Status s = p.Wait();
    if (first.ok() && !s.ok()) first = s;
  }
  pushes_in_flight_.clear();
  return first;
}

Status Session::Evaluate(const FeedMap& feeds, bool minimize, RunState* run) {
  RETURN_IF_ERROR(PullDense(minimize, run));
  // The lookups' ids first (the graph keeps them independent of any
  // lookup), then every table's rows at once, then everything else. Both
  // passes go in node order, which is a topological order.
  const std::vector<bool>& needed = plan_.needed;
  const std::vector<bool>& ids = plan_.ids;
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    if (ids[id]) RETURN_IF_ERROR(EvaluateNode(graph_->node(id), feeds, run));
  }
  RETURN_IF_ERROR(PullSparse(needed, run));
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    if (needed[id] && !ids[id]) RETURN_IF_ERROR(EvaluateNode(graph_->node(id), feeds, run));
  }
  return Status::OK();
}

Status Session::PullDense(bool prefetched, RunState* run) {
  const std::vector<std::string>& pull = plan_.pull;
  if (!initialized_) {
    for (int id = 0; id < graph_->num_nodes(); ++id) {
      const Node& n = graph_->node(id);
      if (plan_.needed[id] && (n.op == OpType::kVariable || n.op == OpType::kSparseTable)) return NeverInitialized(n);
    }
  }
  std::optional<StatusOr<std::map<std::string, Tensor>>> ahead;
  if (prefetched && pull_ahead_) {
    ahead.emplace(std::exchange(pull_ahead_, std::nullopt)->Wait());
    // Another set of variables than the last step's: the pull sent ahead is no use.
    if (pull_ahead_names_ != pull) ahead.reset();
  }
  if (pull.empty()) return Status::OK();
  Status s;
  if (ahead) {
    s = ahead->status();
    if (s.ok()) run->pulled = std::move(**ahead);
  } else {
    s = store_->PullInto(pull, &run->pulled);
  }
  if (!s.ok()) {
    if (s.code() == StatusCode::kNotFound) return s.WithContext("a variable was never initialized");
    return s;
  }
  return Status::OK();
}

Status Session::PullSparse(const std::vector<bool>& needed, RunState* run) {
  std::map<int, std::vector<int64_t>> ids;  // by table node
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    const Node& n = graph_->node(id);
    if (!needed[id] || !IsLookup(n)) continue;
    RETURN_IF_ERROR(AppendLookupIds(n, run->values[n.inputs[1]], &ids[n.inputs[0]]));
  }
  std::map<std::string, Tensor> request;
  for (auto& [table, list] : ids) {
    const Node& t = graph_->node(table);
    TableRows& rows = run->tables[table];
    rows = ReadRows(list, t.table.dim);
    if (rows.ids.num_elements() > 0) request[t.name] = rows.ids;
  }
  if (request.empty()) return Status::OK();
  StatusOr<std::map<std::string, Tensor>> r = store_->SparsePull(request);
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound) {
      return r.status().WithContext("a sparse table was never initialized");
    }
    return r.status();
  }
  for (auto& [table, rows] : run->tables) {
    const Node& t = graph_->node(table);
    if (rows.ids.num_elements() == 0) continue;
    auto it = r->find(t.name);
    const Shape want{rows.ids.num_elements(), t.table.dim};
    if (it == r->end() || it->second.dtype() != DType::kFloat32 || it->second.shape() != want) {
      return Internal("sparse pull of '" + t.name + "' did not return float32 rows " + ShapeString(want));
    }
    rows.rows = it->second;
  }
  return Status::OK();
}

Status Session::EvaluateNode(const Node& n, const FeedMap& feeds, RunState* run) {
  std::vector<Tensor>& values = run->values;
  const std::map<std::string, Tensor>& pulled = run->pulled;
  Tensor& v = values[n.id];
  switch (n.op) {
    case OpType::kPlaceholder: {
      auto it = feeds.find(Output{n.id});
      if (it == feeds.end()) return InvalidArgument("placeholder '" + n.name + "' must be fed");
      v = it->second;
      return Status::OK();
    }
    case OpType::kConstant: v = n.value; return Status::OK();
    case OpType::kVariable: v = n.variable.local ? local_values_.at(n.id) : pulled.at(n.name); return Status::OK();
    case OpType::kSparseTable:  // read through run->tables by its lookups
    case OpType::kMinimize: v = Tensor(); return Status::OK();
    case OpType::kAssign:
    case OpType::kAssignAdd: return EvaluateAssign(n, &values, &run->batch);
    case OpType::kEmbeddingLookup:
    case OpType::kEmbeddingBag: {
      ASSIGN_OR_RETURN(v, EmbeddingForward(n, run->tables.at(n.inputs[0]), values[n.inputs[1]]));
      return Status::OK();
    }
    default: {
      std::vector<const Tensor*>& in = scratch_inputs_;
      in.clear();
      for (int i : n.inputs) in.push_back(&values[i]);
      ASSIGN_OR_RETURN(v, ComputeForward(n, in));
      return Status::OK();
    }
  }
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
    spare_nodes_.Erase(&batch->assign_adds, var.name);
    spare_nodes_.At(&batch->assigns, var.name) = result.Clone();
  } else {
    auto it = batch->assign_adds.find(var.name);
    if (it == batch->assign_adds.end()) {
      spare_nodes_.At(&batch->assign_adds, var.name) = value.Clone();
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

std::vector<bool> Session::UpdateSet(const Node& minimize) const {
  const int loss = minimize.inputs[0];
  std::vector<bool> update(graph_->num_nodes(), false);
  for (Output v : minimize.minimize.var_list) update[v.node] = true;
  if (!minimize.minimize.var_list.empty()) return update;
  for (int id = 0; id <= loss; ++id) {
    const Node& n = graph_->node(id);
    update[id] = (n.op == OpType::kVariable && n.variable.trainable && !n.variable.local) ||
                 (n.op == OpType::kSparseTable && n.table.trainable);
  }
  return update;
}

std::vector<bool> Session::Leads(int loss, const std::vector<bool>& update) const {
  // Gradients flow only along the nodes that lead to something updated: not
  // into labels, features, ids or frozen branches.
  std::vector<bool> leads(graph_->num_nodes(), false);
  for (int id = 0; id <= loss; ++id) {
    const Node& n = graph_->node(id);
    if (IsLookup(n)) {
      leads[id] = update[n.inputs[0]];
    } else if (update[id]) {
      leads[id] = n.op == OpType::kVariable;
    } else if (IsDifferentiable(n.op)) {
      leads[id] = std::any_of(n.inputs.begin(), n.inputs.end(), [&](int i) { return leads[i]; });
    }
  }
  return leads;
}

Status Session::Differentiate(const Node& minimize, RunState* run) {
  const int loss = minimize.inputs[0];
  const std::vector<bool>& needed = plan_.needed;
  const std::vector<bool>& update = plan_.update;  // the plan's one Minimize is this one
  const std::vector<bool>& leads = plan_.leads;
  // Overlap: finished gradients leave in buckets while backward goes on
  // (SessionOptions::push_bucket_bytes); `early` holds those not yet sent.
  const bool stream = overlapping() && options_.push_bucket_bytes >= 0;
  PushBatch early;
  int64_t early_bytes = 0;
  std::vector<int> bucket;               // the nodes of `early`
  std::vector<bool>& sent = scratch_sent_;  // pushed already
  sent.assign(graph_->num_nodes(), false);
  if (stream) RETURN_IF_ERROR(SetLearningRate(minimize, run->values, &early));
  const std::vector<Tensor>& values = run->values;
  std::vector<Tensor>& grads = scratch_grads_;  // emptied by ResetRun
  grads.resize(graph_->num_nodes());
  std::map<int, TableGradient> table_grads;  // by table node
  Tensor one(DType::kFloat32, {});
  one.data<float>()[0] = 1.0f;
  grads[loss] = one;
  for (int id = loss; id >= 0; --id) {
    if (!needed[id] || !leads[id] || grads[id].num_elements() == 0) continue;
    const Node& n = graph_->node(id);
    if (stream && update[id] && n.op == OpType::kVariable) {
      // Every node that reads it comes later in the graph, so its gradient is final.
      early.gradients[n.name] = grads[id];
      early_bytes += grads[id].byte_size();
      bucket.push_back(id);
      if (early_bytes >= options_.push_bucket_bytes) {
        pushes_in_flight_.push_back(store_->PushAsync(early));
        for (int b : bucket) sent[b] = true;
        early.gradients.clear();
        early_bytes = 0;
        bucket.clear();
      }
      continue;
    }
    if (IsLookup(n)) {
      const TableRows& rows = run->tables.at(n.inputs[0]);
      auto [it, fresh] = table_grads.try_emplace(n.inputs[0]);
      if (fresh) {
        it->second.rows = Tensor(DType::kFloat32, rows.rows.shape());
        it->second.touched.assign(rows.ids.num_elements(), 0);
      }
      EmbeddingBackward(n, rows, values[n.inputs[1]], grads[id], &it->second);
      continue;
    }
    if (!IsDifferentiable(n.op)) continue;
    std::vector<const Tensor*>& in = scratch_inputs_;
    std::vector<Tensor>& input_grads = scratch_input_grads_;
    std::vector<bool>& wanted = scratch_wanted_;  // only the inputs that lead to an update
    in.clear();
    input_grads.assign(n.inputs.size(), Tensor());
    wanted.clear();
    for (int i : n.inputs) {
      in.push_back(&values[i]);
      wanted.push_back(leads[i]);
    }
    RETURN_IF_ERROR(ComputeBackward(n, in, values[id], grads[id], &input_grads, wanted));
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (input_grads[k].num_elements() == 0 || !leads[n.inputs[k]]) continue;
      Tensor& g = grads[n.inputs[k]];
      if (g.num_elements() == 0) g = std::move(input_grads[k]);
      else g.flat() += input_grads[k].flat();
    }
  }
  scratch_input_grads_.clear();  // holds no step's buffers past it (keeps its capacity)
  PushBatch* batch = &run->batch;
  for (int id = 0; id < graph_->num_nodes(); ++id) {
    const Node& n = graph_->node(id);
    if (!update[id] || n.op != OpType::kVariable || grads[id].num_elements() == 0) continue;
    if (sent[id]) continue;  // already on its way
    spare_nodes_.At(&batch->gradients, n.name) = grads[id];
  }
  for (const auto& [table, grad] : table_grads) {
    SparseRowsUpdate u = TouchedRows(run->tables.at(table), grad);
    // A Run whose bags held no id reached the table but has no row to send.
    if (u.ids.num_elements() > 0) batch->sparse_gradients[graph_->node(table).name] = std::move(u);
  }
  const bool any_sent = std::find(sent.begin(), sent.end(), true) != sent.end();
  if (batch->gradients.empty() && table_grads.empty() && !any_sent) {
    return InvalidArgument("Minimize '" + minimize.name + "': no gradients reach any variable from loss '" +
                           graph_->node(loss).name + "'");
  }
  batch->train_step = true;
  RETURN_IF_ERROR(SetLearningRate(minimize, values, batch));
  if (minimize.minimize.global_step.valid()) batch->global_step = graph_->node(minimize.minimize.global_step).name;
  return Status::OK();
}

Status Session::SetLearningRate(const Node& minimize, const std::vector<Tensor>& values, PushBatch* batch) const {
  if (!minimize.minimize.learning_rate.valid()) return Status::OK();
  const Tensor& lr = values[minimize.minimize.learning_rate.node];
  if (lr.dtype() != DType::kFloat32 || lr.num_elements() != 1) {
    return InvalidArgument("Minimize '" + minimize.name + "': learning_rate must be a float32 scalar");
  }
  batch->learning_rate = lr.data<float>()[0];
  if (!(batch->learning_rate >= 0)) {
    return InvalidArgument("Minimize '" + minimize.name + "': learning rate " +
                           std::to_string(batch->learning_rate) + " is negative");
  }
  return Status::OK();
}

}  // namespace cairn
