#include "worker/layers.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <string>

namespace cairn {
namespace {

constexpr int64_t kMaxUnits = 100000;  // as model.classes
constexpr int64_t kMaxWeights = int64_t{1} << 28;  // one weight matrix: 1 GiB of float32

// 0.5, 1, 1e-05: a number as a user wrote it.
std::string Num(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

// Names of nodes the model builds besides its layers' (and the trainer's).
bool IsReserved(const std::string& name) {
  static const std::set<std::string> kNames = {"train", "loss", "accuracy", "logits", "labels", "x", "dense", "y",
                                               "half", "normalized", "learning_rate", "global_step",
                                               "new_learning_rate", "set_learning_rate"};
  return kNames.count(name) || name.rfind("cairn/", 0) == 0 || name.rfind("eval/", 0) == 0 ||
         name.rfind("dropout/", 0) == 0;
}

bool IsHead(const std::string& type) { return type == "softmax" || type == "logistic" || type == "regression"; }

// A layer's output.
struct Value {
  Output out;
  int64_t width = 0;
  bool ids = false;  // the int64 "ids" input
};

// Builds the list once for training and, if any layer behaves otherwise at
// evaluation (batch_norm, dropout), once more for evaluation, the second
// pass reusing the first one's variables.
class LayerBuilder {
 public:
  LayerBuilder(const ModelConfig& c, Graph* g, Model* m) : c_(c), g_(g), m_(m) {}

  Status Build(const std::vector<LayerSpec>& layers, std::vector<int64_t>* widths) {
    if (layers.empty()) return InvalidArgument("model.layers: empty (the last layer is a head: softmax, logistic or regression)");
    if (!IsHead(layers.back().type)) {
      return InvalidArgument(Where(layers.size() - 1, layers.back()) +
                             ": the last layer must be a head (softmax, logistic or regression)");
    }
    bool differs = false;
    for (const LayerSpec& l : layers) differs |= l.type == "batch_norm" || l.type == "dropout";
    RETURN_IF_ERROR(Pass(layers, /*training=*/true, widths));
    if (differs) RETURN_IF_ERROR(Pass(layers, /*training=*/false, nullptr));
    return g_->status();
  }

 private:
  static std::string Where(size_t i, const LayerSpec& l) {
    return "model.layers[" + std::to_string(i) + "] (" + l.type + (l.name.empty() ? "" : " '" + l.name + "'") + ")";
  }

  Status Pass(const std::vector<LayerSpec>& layers, bool training, std::vector<int64_t>* widths) {
    training_ = training;
    prefix_ = training ? "" : "eval/";
    values_.clear();
    values_["features"] = {Features(), c_.features, false};
    if (c_.slots > 0) values_["ids"] = {Ids(), c_.slots, true};
    Value previous = values_["features"];
    std::map<std::string, int> counts;  // layers of each type so far: default names
    for (size_t i = 0; i < layers.size(); ++i) {
      LayerSpec l = layers[i];
      const int k = counts[l.type]++;
      if (l.name.empty()) {
        // The dense layer that gives the head its logits is "output", as in
        // the presets.
        const bool logits = l.type == "dense" && i + 2 == layers.size();
        l.name = logits ? "output" : l.type == "normalize" ? "normalize" : l.type + "_" + std::to_string(k);
      }
      if (l.name == "features" || l.name == "ids") return InvalidArgument(Where(i, l) + ": name '" + l.name + "' is an input's");
      if (IsReserved(l.name)) {
        return InvalidArgument(Where(i, l) + ": name '" + l.name + "' is taken by the graph's own nodes (train, loss, "
                               "accuracy, logits, labels, x, dense, y, half, normalized, learning_rate, global_step, "
                               "cairn/..., eval/..., dropout/...)");
      }
      if (IsHead(l.type) && i + 1 != layers.size()) {
        return InvalidArgument(Where(i, l) + ": a head (softmax, logistic, regression) must be the last layer");
      }
      if (training && !names_.insert(l.name).second) {
        return InvalidArgument(Where(i, l) + ": another layer is named '" + l.name + "' already");
      }
      std::vector<Value> in;
      if (l.inputs.empty()) {
        in.push_back(previous);
      } else {
        for (const std::string& name : l.inputs) {
          auto it = values_.find(name);
          if (it == values_.end()) {
            return InvalidArgument(Where(i, l) + ".inputs: no input or earlier layer named '" + name + "'" +
                                   (name == "ids" ? " (the data has no categorical ids)" : ""));
          }
          in.push_back(it->second);
        }
      }
      if (!l.seed) l.seed = c_.seed + i;
      Value out;
      RETURN_IF_ERROR(Layer(i, l, in, &out));
      if (!g_->status().ok()) return InvalidArgument(Where(i, l) + ": " + g_->status().message());
      values_[l.name] = out;
      previous = out;
      if (widths) widths->push_back(out.width);
    }
    return Status::OK();
  }

  Output Features() {
    if (!m_->x.valid()) m_->x = g_->Placeholder(c_.slots > 0 ? "dense" : "x", DType::kFloat32, {-1, c_.features});
    return m_->x;
  }
  Output Ids() {
    if (!m_->ids.valid()) m_->ids = g_->Placeholder("ids", DType::kInt64, {-1, c_.slots});
    return m_->ids;
  }

  // The variable `o.name`, made on the first pass.
  Output Var(const VariableOptions& o) {
    auto it = vars_.find(o.name);
    if (it != vars_.end()) return it->second;
    return vars_[o.name] = g_->Variable(o);
  }
  Output Table(const SparseTableOptions& o) {
    auto it = vars_.find(o.name);
    if (it != vars_.end()) return it->second;
    return vars_[o.name] = g_->SparseTable(o);
  }
  Output Scalar(const std::string& name, float v) {
    auto it = vars_.find(name);
    if (it != vars_.end()) return it->second;
    return vars_[name] = g_->Constant(name, Tensor::FromVector({}, {v}));
  }

  Status OneFloatInput(size_t i, const LayerSpec& l, const std::vector<Value>& in) const {
    if (in.size() != 1) return InvalidArgument(Where(i, l) + ".inputs: takes one input, got " + std::to_string(in.size()));
    if (in[0].ids) return InvalidArgument(Where(i, l) + ": reads float values; only an embedding reads \"ids\"");
    return Status::OK();
  }

  Status Layer(size_t i, const LayerSpec& l, const std::vector<Value>& in, Value* out) {
    const std::string& t = l.type;
    const std::string name = prefix_ + l.name;
    if (t == "dense") {
      RETURN_IF_ERROR(OneFloatInput(i, l, in));
      if (l.units < 1 || l.units > kMaxUnits) {
        return InvalidArgument(Where(i, l) + ".units: must be in [1, " + std::to_string(kMaxUnits) + "], got " +
                               std::to_string(l.units));
      }
      if (in[0].width > kMaxWeights / l.units) {
        return InvalidArgument(Where(i, l) + ": " + std::to_string(in[0].width) + " x " + std::to_string(l.units) +
                               " is more than " + std::to_string(kMaxWeights) + " weights (1 GiB)");
      }
      if (l.activation != "none" && l.activation != "relu" && l.activation != "sigmoid" && l.activation != "tanh") {
        return InvalidArgument(Where(i, l) + ".activation: unknown activation '" + l.activation +
                               "' (none, relu, sigmoid, tanh)");
      }
      if (l.init != "glorot_uniform" && l.init != "zeros") {
        return InvalidArgument(Where(i, l) + ".init: unknown '" + l.init + "' (glorot_uniform, zeros)");
      }
      VariableOptions w;
      w.name = l.weights_name.empty() ? l.name + "/W" : l.weights_name;
      w.shape = {in[0].width, l.units};
      if (l.init == "glorot_uniform") w.init.kind = InitKind::kGlorotUniform;
      w.init.seed = *l.seed;
      Output z = g_->MatMul(in[0].out, Var(w));
      if (l.bias) {
        VariableOptions b;
        b.name = l.bias_name.empty() ? l.name + "/b" : l.bias_name;
        b.shape = {l.units};
        z = g_->Add(z, Var(b), name + "/z");
      }
      Output a = z;
      if (l.activation == "relu") a = g_->Relu(z, name + "/out");
      if (l.activation == "sigmoid") a = g_->Sigmoid(z, name + "/out");
      if (l.activation == "tanh") a = g_->Tanh(z, name + "/out");
      *out = {a, l.units, false};
      return Status::OK();
    }
    if (t == "normalize") {
      RETURN_IF_ERROR(OneFloatInput(i, l, in));
      if (!(in[0].out == m_->x)) return InvalidArgument(Where(i, l) + ": normalizes \"features\" only");
      if (training_ && m_->mean.valid()) return InvalidArgument(Where(i, l) + ": a model has one normalize layer");
      if (training_) {
        VariableOptions mean;
        mean.name = l.name + "/mean";
        mean.shape = {c_.features};
        mean.trainable = false;
        VariableOptions inv = mean;
        inv.name = l.name + "/inv_std";
        inv.init.kind = InitKind::kOnes;
        m_->mean = Var(mean);
        m_->inv_std = Var(inv);
        m_->new_mean = g_->Placeholder(l.name + "/new_mean", DType::kFloat32, {c_.features});
        m_->new_inv_std = g_->Placeholder(l.name + "/new_inv_std", DType::kFloat32, {c_.features});
        m_->set_mean = g_->Assign(m_->mean, m_->new_mean, l.name + "/set_mean");
        m_->set_inv_std = g_->Assign(m_->inv_std, m_->new_inv_std, l.name + "/set_inv_std");
      }
      // The same normalized node serves both passes: nothing in it differs.
      if (training_) normalized_ = g_->Mul(g_->Sub(in[0].out, m_->mean), m_->inv_std, l.name == "normalize" ? "normalized" : l.name + "/out");
      *out = {normalized_, in[0].width, false};
      return Status::OK();
    }
    if (t == "batch_norm") {
      RETURN_IF_ERROR(OneFloatInput(i, l, in));
      if (!(l.momentum >= 0 && l.momentum < 1)) {
        return InvalidArgument(Where(i, l) + ".momentum: must be in [0, 1), got " + Num(l.momentum));
      }
      if (!(l.epsilon > 0)) return InvalidArgument(Where(i, l) + ".epsilon: must be > 0");
      const int64_t f = in[0].width;
      VariableOptions gamma;
      gamma.name = l.name + "/gamma";
      gamma.shape = {f};
      gamma.init.kind = InitKind::kOnes;
      VariableOptions beta;
      beta.name = l.name + "/beta";
      beta.shape = {f};
      VariableOptions mm;
      mm.name = l.name + "/moving_mean";
      mm.shape = {f};
      mm.trainable = false;
      mm.collections = {"MOVING_AVERAGE_VARIABLES"};
      VariableOptions mv = mm;
      mv.name = l.name + "/moving_variance";
      mv.init.kind = InitKind::kOnes;
      Output moving_mean = Var(mm), moving_var = Var(mv);
      Output eps = Scalar(l.name + "/epsilon", static_cast<float>(l.epsilon));
      Output x = in[0].out, mean, var;
      if (training_) {
        mean = g_->ColumnMean(x, name + "/batch_mean");
        Output centered = g_->Sub(x, mean, name + "/centered");
        var = g_->ColumnMean(g_->Square(centered), name + "/batch_variance");
        x = g_->Mul(centered, g_->Rsqrt(g_->Add(var, eps)), name + "/normalized");
        // moving += k (batch - moving), k = (1 - momentum) / workers.
        Output k = Scalar(l.name + "/update_rate", static_cast<float>((1.0 - l.momentum) / std::max(1, c_.workers)));
        m_->update_ops.push_back(g_->AssignAdd(moving_mean, g_->Mul(g_->Sub(mean, moving_mean), k),
                                               l.name + "/update_moving_mean"));
        m_->update_ops.push_back(g_->AssignAdd(moving_var, g_->Mul(g_->Sub(var, moving_var), k),
                                               l.name + "/update_moving_variance"));
      } else {
        x = g_->Mul(g_->Sub(x, moving_mean), g_->Rsqrt(g_->Add(moving_var, eps)), name + "/normalized");
      }
      *out = {g_->Add(g_->Mul(x, Var(gamma)), Var(beta), name + "/out"), f, false};
      return Status::OK();
    }
    if (t == "dropout") {
      RETURN_IF_ERROR(OneFloatInput(i, l, in));
      if (!(l.rate >= 0 && l.rate < 1)) {
        return InvalidArgument(Where(i, l) + ".rate: must be in [0, 1), got " + Num(l.rate));
      }
      if (!training_ || l.rate == 0) {
        *out = in[0];
        return Status::OK();
      }
      if (!m_->step_seed.valid()) m_->step_seed = g_->Placeholder("dropout/step_seed", DType::kInt64, {});
      *out = {g_->Dropout(in[0].out, m_->step_seed, static_cast<float>(l.rate), *l.seed, name),
              in[0].width, false};
      return Status::OK();
    }
    if (t == "embedding") {
      if (in.size() != 1 || !in[0].ids) return InvalidArgument(Where(i, l) + ".inputs: reads \"ids\" (only)");
      if (l.dim < 1 || l.dim > 1024) return InvalidArgument(Where(i, l) + ".dim: must be in [1, 1024], got " + std::to_string(l.dim));
      if (!(l.init_scale >= 0)) return InvalidArgument(Where(i, l) + ".init_scale: must be >= 0");
      SparseTableOptions table;
      table.name = l.name;
      table.dim = static_cast<int32_t>(l.dim);
      if (l.init_scale > 0) {
        table.init.kind = InitKind::kUniform;
        table.init.minval = -l.init_scale;
        table.init.maxval = l.init_scale;
      }
      table.init.seed = *l.seed;
      Output tab = Table(table);
      Output ids = in[0].out;
      int64_t slots = in[0].width;
      if (!l.slots.empty()) {
        for (int64_t slot : l.slots) {
          if (slot < 0 || slot >= in[0].width) {
            return InvalidArgument(Where(i, l) + ".slots: slot " + std::to_string(slot) + " outside [0, " +
                                   std::to_string(in[0].width) + ")");
          }
        }
        ids = g_->SelectColumns(ids, l.slots, name + "/ids");
        slots = static_cast<int64_t>(l.slots.size());
      }
      if (l.combiner == "concat") {
        // One bag of one id per (example, slot): a missing id's row is zeros.
        Output rows = g_->EmbeddingBag(tab, g_->Reshape(ids, {-1, 1}), Combiner::kSum, name + "/rows");
        *out = {g_->Reshape(rows, {-1, slots * l.dim}, name + "/out"), slots * l.dim, false};
      } else if (l.combiner == "sum" || l.combiner == "mean") {
        *out = {g_->EmbeddingBag(tab, ids, l.combiner == "sum" ? Combiner::kSum : Combiner::kMean, name + "/bag"),
                l.dim, false};
      } else {
        return InvalidArgument(Where(i, l) + ".combiner: unknown '" + l.combiner + "' (concat, sum, mean)");
      }
      return Status::OK();
    }
    if (t == "concat" || t == "add") {
      if (in.size() < 2) return InvalidArgument(Where(i, l) + ".inputs: needs two or more");
      std::vector<Output> outs;
      int64_t width = 0;
      for (const Value& v : in) {
        if (v.ids) return InvalidArgument(Where(i, l) + ": reads float values; only an embedding reads \"ids\"");
        if (t == "add" && v.width != in[0].width) {
          return InvalidArgument(Where(i, l) + ": inputs of widths " + std::to_string(in[0].width) + " and " +
                                 std::to_string(v.width) + " (add needs one width)");
        }
        outs.push_back(v.out);
        width += v.width;
      }
      if (t == "concat") {
        *out = {g_->Concat(outs, 1, name), width, false};
      } else {
        Output sum = outs[0];
        for (size_t k = 1; k < outs.size(); ++k) sum = g_->Add(sum, outs[k], k + 1 == outs.size() ? name : "");
        *out = {sum, in[0].width, false};
      }
      return Status::OK();
    }
    if (IsHead(t)) return Head(i, l, in, out);
    return InvalidArgument(Where(i, l) + ".type: unknown layer type '" + t +
                           "' (normalize, dense, batch_norm, dropout, embedding, concat, add, softmax, logistic, "
                           "regression)");
  }

  Status Head(size_t i, const LayerSpec& l, const std::vector<Value>& in, Value* out) {
    RETURN_IF_ERROR(OneFloatInput(i, l, in));
    const std::string& t = l.type;
    const int64_t want = t == "softmax" ? c_.classes : 1;
    if (in[0].width != want) {
      return InvalidArgument(Where(i, l) + ": its input has width " + std::to_string(in[0].width) + ", a " + t +
                             " head needs " + std::to_string(want) +
                             (t == "softmax" ? " (model.classes: end with a dense of that many units)"
                                             : " (end with a dense of 1 unit)"));
    }
    Output output, loss, accuracy;
    const std::string p = prefix_;
    if (t == "softmax") {
      if (!m_->y.valid()) m_->y = g_->Placeholder("labels", DType::kInt64, {-1});
      output = in[0].out;
      loss = g_->ReduceMean(g_->SparseSoftmaxCrossEntropyWithLogits(output, m_->y), p + "loss");
      accuracy = g_->Accuracy(output, m_->y, p + "accuracy");
      m_->classifier = true;
    } else if (t == "logistic") {
      if (!m_->y.valid()) m_->y = g_->Placeholder("labels", DType::kFloat32, {-1});
      output = g_->Reshape(in[0].out, {-1}, p + "logits");
      loss = g_->ReduceMean(g_->SigmoidCrossEntropyWithLogits(output, m_->y), p + "loss");
      m_->click = true;
    } else {
      if (!m_->y.valid()) m_->y = g_->Placeholder("y", DType::kFloat32, {-1, 1});
      output = in[0].out;
      Output half = Scalar("half", 0.5f);
      loss = g_->Mul(g_->ReduceMean(g_->Square(g_->Sub(output, m_->y))), half, p + "loss");
    }
    if (training_) {
      m_->output = output;
      m_->loss = loss;
      m_->accuracy = accuracy;
    } else {
      m_->eval_output = output;
      m_->eval_loss = loss;
      m_->eval_accuracy = accuracy;
    }
    *out = {output, want, false};
    return Status::OK();
  }

  const ModelConfig& c_;
  Graph* const g_;
  Model* const m_;
  bool training_ = true;
  std::string prefix_;                    // of the evaluation pass's node names
  std::map<std::string, Value> values_;   // this pass's layers and inputs, by name
  std::map<std::string, Output> vars_;    // variables, tables and constants, made once
  std::set<std::string> names_;
  Output normalized_;
};

LayerSpec Dense(const std::string& name, int64_t units, const std::string& activation, uint64_t seed) {
  LayerSpec l;
  l.type = "dense";
  l.name = name;
  l.units = units;
  l.activation = activation;
  l.seed = seed;
  return l;
}

LayerSpec Named(const std::string& type, const std::string& name, std::vector<std::string> inputs = {}) {
  LayerSpec l;
  l.type = type;
  l.name = name;
  l.inputs = std::move(inputs);
  return l;
}

}  // namespace

StatusOr<std::vector<LayerSpec>> PresetLayers(const ModelConfig& c) {
  const uint64_t seed = c.seed;
  std::vector<LayerSpec> l;
  if (c.kind == "softmax_regression" || c.kind == "mlp") {
    l.push_back(Named("normalize", "normalize"));
    if (c.kind == "mlp") {
      for (size_t i = 0; i < c.hidden.size(); ++i) {
        l.push_back(Dense("dense_" + std::to_string(i), c.hidden[i], c.activation, seed + i));
      }
    }
    l.push_back(Dense("output", c.classes, "none", seed + 1000));
    l.push_back(Named("softmax", "head"));
    return l;
  }
  if (c.kind != "click_logistic" && c.kind != "click_wide_deep") {
    return InvalidArgument("model.kind: '" + c.kind + "' has no layer preset");
  }
  // The wide part: a dim-1 row per present id, summed, plus a linear term
  // of the log counts.
  // Its variables keep the names (and zero seeds) of the builders before
  // the presets, so that their snapshots restore.
  LayerSpec wide = Named("embedding", "click/wide", {"ids"});
  wide.dim = 1;
  wide.combiner = "sum";
  wide.init_scale = 0;
  wide.seed = 0;
  l.push_back(wide);
  LayerSpec linear = Dense("click/wide/dense", 1, "none", 0);
  linear.inputs = {"features"};
  linear.init = "zeros";
  linear.weights_name = "click/wide/dense_w";
  linear.bias_name = "click/wide/b";
  l.push_back(linear);
  std::vector<std::string> logit = {"click/wide", "click/wide/dense"};
  if (c.kind == "click_wide_deep") {
    LayerSpec embed = Named("embedding", "click/embedding", {"ids"});
    embed.dim = c.embedding_dim;
    embed.seed = seed;
    l.push_back(embed);
    l.push_back(Named("normalize", "normalize", {"features"}));
    l.push_back(Named("concat", "click/deep/in", {"click/embedding", "normalize"}));
    for (size_t i = 0; i < c.hidden.size(); ++i) {
      l.push_back(Dense("click/deep/dense_" + std::to_string(i), c.hidden[i], c.activation, seed + i));
    }
    l.push_back(Dense("click/deep/output", 1, "none", seed + 1000));
    logit.push_back("click/deep/output");
  }
  l.push_back(Named("add", "click/logit", logit));
  l.push_back(Named("logistic", "head"));
  return l;
}

Status BuildLayers(const ModelConfig& c, Graph* g, Model* m, std::vector<int64_t>* widths) {
  std::vector<LayerSpec> layers = c.layers;
  if (c.kind != "layers") {
    ASSIGN_OR_RETURN(layers, PresetLayers(c));
  }
  if (c.features < 1) return InvalidArgument("model: the data has no features");
  return LayerBuilder(c, g, m).Build(layers, widths);
}

}  // namespace cairn
