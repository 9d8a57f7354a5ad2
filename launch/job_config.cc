#include "launch/job_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/registry.h"
#include "ps/optimizer.h"
#include "worker/click_data.h"

namespace cairn {

bool IsClickData(const std::string& kind) { return kind == "synthetic_clicks" || kind == "criteo_tsv"; }

namespace {

Registry<DataFactory>& DataKinds() {
  static auto* kinds = new Registry<DataFactory>;  // never destroyed: read by threads until exit
  return *kinds;
}

bool IsBuiltInData(const std::string& kind) {
  return kind == "synthetic_linear" || kind == "fashion_mnist" || IsClickData(kind);
}

}  // namespace

Status RegisterData(const std::string& kind, DataFactory factory) {
  if (kind.empty() || !factory) return InvalidArgument("RegisterData: a data kind needs a name and a factory");
  if (IsBuiltInData(kind)) return AlreadyExists("data kind '" + kind + "' is built in");
  return DataKinds().Add(kind, std::move(factory)).WithContext("data kind");
}

DataFactory RegisteredData(const std::string& kind) { return DataKinds().Find(kind); }

namespace {

// Reads typed fields from one YAML map and reports unknown keys.
class Section {
 public:
  Section(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {}

  Status Check() const {
    if (node_ && !node_.IsNull() && !node_.IsMap()) return InvalidArgument(path_ + ": expected a map");
    return Status::OK();
  }

  template <typename T>
  Status Get(const char* key, T* out) {
    seen_.insert(key);
    if (!node_ || !node_.IsMap()) return Status::OK();
    YAML::Node v = node_[key];
    if (!v || v.IsNull()) return Status::OK();
    try {
      if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        if (v.IsScalar()) {  // one file needs no list
          *out = {v.as<std::string>()};
          return Status::OK();
        }
      }
      *out = v.as<T>();
    } catch (const YAML::Exception&) {
      return InvalidArgument(Field(key) + ": expected " + TypeName<T>() + ", got '" + Scalar(v) + "'");
    }
    return Status::OK();
  }

  YAML::Node Child(const char* key) {
    seen_.insert(key);
    return node_ && node_.IsMap() ? node_[key] : YAML::Node();
  }

  Status RejectUnknown() const {
    if (!node_ || !node_.IsMap()) return Status::OK();
    for (const auto& kv : node_) {
      if (!kv.first.IsScalar()) return InvalidArgument((path_.empty() ? std::string("the job file") : path_) + ": a key must be a name, not a map or a list");
      std::string key = kv.first.as<std::string>();
      if (!seen_.count(key)) return InvalidArgument(Field(key.c_str()) + ": unknown field");
    }
    return Status::OK();
  }

  std::string Field(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

 private:
  template <typename T> static const char* TypeName() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    else if constexpr (std::is_unsigned_v<T>) return "a non-negative integer";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else if constexpr (std::is_floating_point_v<T>) return "a number";
    else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "a list of integers";
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of strings";
    else return "a string";
  }
  static std::string Scalar(const YAML::Node& v) {
    if (v.IsScalar()) return v.Scalar();
    return v.IsMap() ? "<map>" : "<list>";
  }

  YAML::Node node_;
  std::string path_;
  std::set<std::string> seen_;
};

std::string FormatNumber(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

Status Positive(const std::string& field, double v) {
  if (!(v > 0)) return InvalidArgument(field + ": must be > 0, got " + std::to_string(v));
  return Status::OK();
}

// Bounds on sizes, so that a mistyped one is an error naming its field
// rather than an allocation that fails (std::bad_alloc) or overflows.
constexpr int64_t kMaxBatchSize = int64_t{1} << 20;
constexpr int64_t kMaxBatchValues = int64_t{1} << 28;   // one batch's widest layer: 1 GiB of float32
constexpr int64_t kMaxLayerWeights = int64_t{1} << 28;  // one weight matrix: 1 GiB of float32
constexpr int64_t kMaxExamples = 100000000;
constexpr int64_t kMaxDataValues = int64_t{1} << 31;    // synthetic data in memory: 8 GiB of float32
constexpr int64_t kMaxEpochs = 1000000;
constexpr int64_t kMaxTimeoutMs = int64_t{24} * 3600 * 1000;  // a day: deadlines stay far from overflow
constexpr int64_t kFashionMnistFeatures = 28 * 28;
// Batch normalization outside sync mode: each worker adds (1 - momentum) /
// workers of (batch - moving) with `moving` as it pulled it, up to a few
// steps old (overlap, other workers' pushes). A delayed average of gain k
// per push is stable for delays up to about 1 / (2k) pushes; 0.9 keeps the
// gain at 0.1 / workers.
constexpr double kMinAsyncMomentum = 0.9;

Status AtMost(const std::string& field, int64_t v, int64_t max, const std::string& why = "") {
  if (v <= max) return Status::OK();
  return InvalidArgument(field + ": at most " + std::to_string(max) + (why.empty() ? "" : " " + why) + ", got " +
                         std::to_string(v));
}

// The model as the job's data will feed it: features and categorical slots.
ModelConfig ModelForData(const JobConfig& c) {
  ModelConfig m = c.model;
  m.workers = c.cluster.workers;
  if (IsClickData(c.data.kind)) {
    m.features = kClickCounts;
    m.slots = kClickSlots;
  } else {
    m.features = c.data.kind == "fashion_mnist" ? kFashionMnistFeatures : c.data.features;
  }
  return m;
}

// The widths of the model's input and layers (the layer list built into a
// scratch graph: its errors name the layer and field).
StatusOr<std::vector<int64_t>> LayerWidths(const JobConfig& c) {
  const ModelConfig m = ModelForData(c);
  // A model or data of one's own: the sizes are known when the job builds them.
  if (IsRegisteredModel(m.kind) || RegisteredData(c.data.kind)) return std::vector<int64_t>{1};
  if (m.kind == "linear_regression") return std::vector<int64_t>{m.features, 1};
  // The whole model as a worker builds it, so that a clash with the
  // graph's own nodes is found now, not once the data has loaded.
  std::vector<int64_t> widths = {m.features};
  Graph scratch;
  ASSIGN_OR_RETURN(Model model, BuildModel(m, c.optimizer.learning_rate, &scratch, &widths));
  RETURN_IF_ERROR(AddWorkerStates(std::max(1, c.cluster.workers), &scratch, &model));
  return widths;
}

Status ValidateSizes(const JobConfig& c) {
  RETURN_IF_ERROR(AtMost("data.examples", c.data.examples, kMaxExamples));
  if (c.data.kind == "synthetic_linear" && c.data.examples > kMaxDataValues / c.data.features) {
    return InvalidArgument("data.examples: " + std::to_string(c.data.examples) + " examples of " +
                           std::to_string(c.data.features) + " features exceed " + std::to_string(kMaxDataValues) +
                           " values (8 GiB) in memory");
  }
  // Each dense layer's weights are bounded where it is built (worker/layers.cc).
  ASSIGN_OR_RETURN(std::vector<int64_t> widths, LayerWidths(c));
  if (c.model.kind == "linear_regression") RETURN_IF_ERROR(AtMost("data.features", widths[0], kMaxLayerWeights));
  RETURN_IF_ERROR(AtMost("train.batch_size", c.train.batch_size, kMaxBatchSize));
  const int64_t widest = *std::max_element(widths.begin(), widths.end());
  if (c.train.batch_size > kMaxBatchValues / widest) {
    return InvalidArgument("train.batch_size: " + std::to_string(c.train.batch_size) + " examples x " +
                           std::to_string(widest) + " values in the widest layer exceed " +
                           std::to_string(kMaxBatchValues) + " values (1 GiB) per batch");
  }
  RETURN_IF_ERROR(AtMost("train.epochs", c.train.epochs, kMaxEpochs));
  RETURN_IF_ERROR(AtMost("cluster.timeout_ms", c.cluster.timeout_ms, kMaxTimeoutMs, "(a day)"));
  RETURN_IF_ERROR(AtMost("cluster.sync_timeout_ms", c.cluster.sync_timeout_ms, kMaxTimeoutMs, "(a day)"));
  return Status::OK();
}

Status ParseLayers(const YAML::Node& list, ModelConfig* m) {
  if (!list || list.IsNull()) return Status::OK();
  if (!list.IsSequence()) return InvalidArgument("model.layers: expected a list of layers");
  m->layers.clear();
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string path = "model.layers[" + std::to_string(i) + "]";
    if (!list[i].IsMap()) return InvalidArgument(path + ": expected a map (type: dense, units: 128, ...)");
    Section s(list[i], path);
    LayerSpec l;
    RETURN_IF_ERROR(s.Get("type", &l.type));
    if (l.type.empty()) return InvalidArgument(path + ".type: missing (normalize, dense, batch_norm, dropout, embedding, concat, add, softmax, logistic, regression)");
    RETURN_IF_ERROR(s.Get("name", &l.name));
    RETURN_IF_ERROR(s.Get("inputs", &l.inputs));
    RETURN_IF_ERROR(s.Get("units", &l.units));
    RETURN_IF_ERROR(s.Get("activation", &l.activation));
    RETURN_IF_ERROR(s.Get("bias", &l.bias));
    RETURN_IF_ERROR(s.Get("init", &l.init));
    constexpr int64_t kNoSeed = std::numeric_limits<int64_t>::min();
    int64_t seed = kNoSeed;
    RETURN_IF_ERROR(s.Get("seed", &seed));
    if (seed != kNoSeed && seed < 0) return InvalidArgument(path + ".seed: must be >= 0, got " + std::to_string(seed));
    if (seed != kNoSeed) l.seed = static_cast<uint64_t>(seed);
    RETURN_IF_ERROR(s.Get("rate", &l.rate));
    RETURN_IF_ERROR(s.Get("momentum", &l.momentum));
    RETURN_IF_ERROR(s.Get("epsilon", &l.epsilon));
    RETURN_IF_ERROR(s.Get("dim", &l.dim));
    RETURN_IF_ERROR(s.Get("combiner", &l.combiner));
    RETURN_IF_ERROR(s.Get("slots", &l.slots));
    RETURN_IF_ERROR(s.Get("init_scale", &l.init_scale));
    RETURN_IF_ERROR(s.RejectUnknown());
    m->layers.push_back(std::move(l));
  }
  return Status::OK();
}

Status ParseRoot(const YAML::Node& root, JobConfig* c) {
  Section top(root, "");
  RETURN_IF_ERROR(top.Check());
  RETURN_IF_ERROR(top.Get("name", &c->name));

  Section model(top.Child("model"), "model");
  RETURN_IF_ERROR(model.Check());
  RETURN_IF_ERROR(model.Get("kind", &c->model.kind));
  RETURN_IF_ERROR(model.Get("hidden", &c->model.hidden));
  RETURN_IF_ERROR(model.Get("activation", &c->model.activation));
  RETURN_IF_ERROR(model.Get("classes", &c->model.classes));
  RETURN_IF_ERROR(model.Get("seed", &c->model.seed));
  RETURN_IF_ERROR(model.Get("embedding_dim", &c->model.embedding_dim));
  RETURN_IF_ERROR(ParseLayers(model.Child("layers"), &c->model));
  RETURN_IF_ERROR(model.RejectUnknown());

  Section data(top.Child("data"), "data");
  RETURN_IF_ERROR(data.Check());
  RETURN_IF_ERROR(data.Get("kind", &c->data.kind));
  RETURN_IF_ERROR(data.Get("examples", &c->data.examples));
  RETURN_IF_ERROR(data.Get("features", &c->data.features));
  RETURN_IF_ERROR(data.Get("noise_stddev", &c->data.noise_stddev));
  RETURN_IF_ERROR(data.Get("seed", &c->data.seed));
  RETURN_IF_ERROR(data.Get("dir", &c->data.dir));
  RETURN_IF_ERROR(data.Get("train_limit", &c->data.train_limit));
  RETURN_IF_ERROR(data.Get("test_limit", &c->data.test_limit));
  RETURN_IF_ERROR(data.Get("rows", &c->data.rows));
  RETURN_IF_ERROR(data.Get("test_rows", &c->data.test_rows));
  RETURN_IF_ERROR(data.Get("vocab", &c->data.vocab));
  RETURN_IF_ERROR(data.Get("vocab_min", &c->data.vocab_min));
  RETURN_IF_ERROR(data.Get("vocab_max", &c->data.vocab_max));
  RETURN_IF_ERROR(data.Get("zipf_exponent", &c->data.zipf_exponent));
  RETURN_IF_ERROR(data.Get("int_missing", &c->data.int_missing));
  RETURN_IF_ERROR(data.Get("cat_missing", &c->data.cat_missing));
  RETURN_IF_ERROR(data.Get("click_rate", &c->data.click_rate));
  RETURN_IF_ERROR(data.Get("paths", &c->data.paths));
  RETURN_IF_ERROR(data.Get("test_paths", &c->data.test_paths));
  RETURN_IF_ERROR(data.Get("skip_malformed", &c->data.skip_malformed));
  RETURN_IF_ERROR(data.RejectUnknown());

  Section train(top.Child("train"), "train");
  RETURN_IF_ERROR(train.Check());
  RETURN_IF_ERROR(train.Get("batch_size", &c->train.batch_size));
  RETURN_IF_ERROR(train.Get("epochs", &c->train.epochs));
  RETURN_IF_ERROR(train.Get("max_steps", &c->train.max_steps));
  RETURN_IF_ERROR(train.Get("log_every_steps", &c->train.log_every_steps));
  RETURN_IF_ERROR(train.Get("seed", &c->train.seed));
  RETURN_IF_ERROR(train.Get("overlap", &c->train.overlap));
  RETURN_IF_ERROR(train.Get("push_bucket_bytes", &c->train.push_bucket_bytes));
  RETURN_IF_ERROR(train.RejectUnknown());

  Section opt(top.Child("optimizer"), "optimizer");
  RETURN_IF_ERROR(opt.Check());
  OptimizerSpec& o = c->optimizer;
  RETURN_IF_ERROR(opt.Get("kind", &o.kind));
  RETURN_IF_ERROR(opt.Get("learning_rate", &o.learning_rate));
  RETURN_IF_ERROR(opt.Get("momentum", &o.momentum));
  RETURN_IF_ERROR(opt.Get("nesterov", &o.nesterov));
  RETURN_IF_ERROR(opt.Get("beta1", &o.beta1));
  RETURN_IF_ERROR(opt.Get("beta2", &o.beta2));
  RETURN_IF_ERROR(opt.Get("epsilon", &o.epsilon));
  RETURN_IF_ERROR(opt.Get("initial_accumulator", &o.initial_accumulator));
  RETURN_IF_ERROR(opt.Get("l1", &o.l1));
  RETURN_IF_ERROR(opt.Get("l2", &o.l2));
  RETURN_IF_ERROR(opt.Get("lr_power", &o.lr_power));
  RETURN_IF_ERROR(opt.Get("schedule", &c->schedule.kind));
  RETURN_IF_ERROR(opt.Get("decay_rate", &c->schedule.decay_rate));
  RETURN_IF_ERROR(opt.Get("decay_steps", &c->schedule.decay_steps));
  c->schedule.base = o.learning_rate;
  RETURN_IF_ERROR(opt.RejectUnknown());

  Section cl(top.Child("cluster"), "cluster");
  RETURN_IF_ERROR(cl.Check());
  RETURN_IF_ERROR(cl.Get("servers", &c->cluster.servers));
  RETURN_IF_ERROR(cl.Get("workers", &c->cluster.workers));
  std::string consistency = ConsistencyName(c->cluster.consistency);
  RETURN_IF_ERROR(cl.Get("consistency", &consistency));
  StatusOr<Consistency> parsed_consistency = ParseConsistency(consistency);
  if (!parsed_consistency.ok()) return parsed_consistency.status().WithContext("cluster.consistency");
  c->cluster.consistency = *parsed_consistency;
  RETURN_IF_ERROR(cl.Get("staleness", &c->cluster.staleness));
  RETURN_IF_ERROR(cl.Get("sync_timeout_ms", &c->cluster.sync_timeout_ms));
  std::string missing = MissingWorkersName(c->cluster.missing_workers);
  RETURN_IF_ERROR(cl.Get("missing_workers", &missing));
  StatusOr<MissingWorkers> parsed_missing = ParseMissingWorkers(missing);
  if (!parsed_missing.ok()) return parsed_missing.status().WithContext("cluster.missing_workers");
  c->cluster.missing_workers = *parsed_missing;
  RETURN_IF_ERROR(cl.Get("max_recoveries", &c->cluster.max_recoveries));
  RETURN_IF_ERROR(cl.Get("bind", &c->cluster.bind));
  RETURN_IF_ERROR(cl.Get("advertise", &c->cluster.advertise));
  RETURN_IF_ERROR(cl.Get("split_threshold_bytes", &c->cluster.split_threshold_bytes));
  RETURN_IF_ERROR(cl.Get("timeout_ms", &c->cluster.timeout_ms));
  RETURN_IF_ERROR(cl.Get("io_threads", &c->cluster.io_threads));
  RETURN_IF_ERROR(cl.RejectUnknown());

  Section snap(top.Child("snapshot"), "snapshot");
  RETURN_IF_ERROR(snap.Check());
  RETURN_IF_ERROR(snap.Get("model_dir", &c->snapshot.model_dir));
  RETURN_IF_ERROR(snap.Get("every_steps", &c->snapshot.every_steps));
  RETURN_IF_ERROR(snap.Get("every_secs", &c->snapshot.every_secs));
  RETURN_IF_ERROR(snap.Get("max_to_keep", &c->snapshot.max_to_keep));
  RETURN_IF_ERROR(snap.Get("keep_every_n_hours", &c->snapshot.keep_every_n_hours));
  RETURN_IF_ERROR(snap.RejectUnknown());

  return top.RejectUnknown();
}

Status InRange(const std::string& field, double v, double lo, double hi) {
  if (v >= lo && v <= hi) return Status::OK();
  return InvalidArgument(field + ": must be in [" + FormatNumber(lo) + ", " + FormatNumber(hi) + "], got " + FormatNumber(v));
}

Status ValidateSyntheticClicks(const DataConfig& d, int workers) {
  constexpr int64_t kMaxVocab = 100000000;
  RETURN_IF_ERROR(Positive("data.rows", static_cast<double>(d.rows)));
  RETURN_IF_ERROR(AtMost("data.rows", d.rows, kMaxExamples));
  if (d.rows < workers) {
    return InvalidArgument("data.rows: " + std::to_string(d.rows) + " examples cannot feed " + std::to_string(workers) +
                           " workers");
  }
  if (d.test_rows < 0) return InvalidArgument("data.test_rows: must be >= 0");
  RETURN_IF_ERROR(AtMost("data.test_rows", d.test_rows, kMaxExamples));
  if (!d.vocab.empty() && d.vocab.size() != static_cast<size_t>(kClickSlots)) {
    return InvalidArgument("data.vocab: " + std::to_string(kClickSlots) + " sizes (one per slot, C1..C26), got " +
                           std::to_string(d.vocab.size()));
  }
  for (size_t s = 0; s < d.vocab.size(); ++s) {
    if (d.vocab[s] < 1 || d.vocab[s] > kMaxVocab) {
      return InvalidArgument("data.vocab: slot C" + std::to_string(s + 1) + "'s size must be in [1, 100000000], got " +
                             std::to_string(d.vocab[s]));
    }
  }
  RETURN_IF_ERROR(InRange("data.vocab_min", static_cast<double>(d.vocab_min), 1, kMaxVocab));
  RETURN_IF_ERROR(InRange("data.vocab_max", static_cast<double>(d.vocab_max), static_cast<double>(d.vocab_min),
                          kMaxVocab));
  if (!(d.zipf_exponent > 0) || d.zipf_exponent > 10) return InvalidArgument("data.zipf_exponent: must be in (0, 10]");
  RETURN_IF_ERROR(InRange("data.int_missing", d.int_missing, 0, 1));
  RETURN_IF_ERROR(InRange("data.cat_missing", d.cat_missing, 0, 1));
  return InRange("data.click_rate", d.click_rate, 0.001, 0.999);
}

Status ValidateCriteoTsv(const DataConfig& d) {
  if (d.paths.empty()) return InvalidArgument("data.paths: criteo_tsv needs one or more training files");
  for (const auto* list : {&d.paths, &d.test_paths}) {
    for (const std::string& p : *list) {
      if (p.empty()) return InvalidArgument(std::string(list == &d.paths ? "data.paths" : "data.test_paths") +
                                            ": an empty file name");
    }
  }
  return Status::OK();
}

Status ValidateModelAndData(const JobConfig& c) {
  const std::string& m = c.model.kind;
  if (!IsBuiltInModel(m) && !IsRegisteredModel(m)) {
    return InvalidArgument("model.kind: unknown model '" + m +
                           "' (linear_regression, softmax_regression, mlp, click_logistic, click_wide_deep, layers)");
  }
  if ((m == "layers") != !c.model.layers.empty()) {
    return InvalidArgument(m == "layers" ? "model.layers: kind layers needs a list of layers"
                                         : "model.layers: a list of layers goes with kind layers, not " + m);
  }
  const std::string& d = c.data.kind;
  const bool own = IsRegisteredModel(m) || RegisteredData(d);
  if (!IsBuiltInData(d) && !RegisteredData(d)) {
    return InvalidArgument("data.kind: unknown data kind '" + d +
                           "' (synthetic_linear, fashion_mnist, synthetic_clicks, criteo_tsv, or one a program "
                           "registered with RegisterData)");
  }
  if (m == "layers" && c.cluster.consistency != Consistency::kSync) {
    for (size_t i = 0; i < c.model.layers.size(); ++i) {
      const LayerSpec& l = c.model.layers[i];
      if (l.type == "batch_norm" && l.momentum < kMinAsyncMomentum) {
        return InvalidArgument("model.layers[" + std::to_string(i) + "] (batch_norm" +
                               (l.name.empty() ? "" : " '" + l.name + "'") + ").momentum: at least " +
                               FormatNumber(kMinAsyncMomentum) + " unless cluster.consistency is sync, got " +
                               FormatNumber(l.momentum) +
                               " (in async and ssp mode a worker moves the moving statistics from the value it "
                               "pulled, a step or more old; a faster average can oscillate)");
      }
    }
  }
  if (own) {
    // A model or data of one's own: whether they fit shows when the job builds them.
  } else if (m == "layers") {
    const std::string& head = c.model.layers.back().type;
    const std::string want = d == "synthetic_linear" ? "regression" : IsClickData(d) ? "logistic" : "softmax";
    if (head != want && (head == "softmax" || head == "logistic" || head == "regression")) {
      return InvalidArgument("model.layers[" + std::to_string(c.model.layers.size() - 1) + "] (" + head +
                             "): data.kind " + d + " has " +
                             (want == "softmax" ? "class labels: end with a softmax head"
                              : want == "logistic" ? "clicks: end with a logistic head"
                                                   : "real targets: end with a regression head"));
    }
  } else if ((m == "linear_regression") != (d == "synthetic_linear") || IsClickModel(m) != IsClickData(d)) {
    return InvalidArgument("model.kind: " + m + " cannot train on data.kind " + d +
                           " (linear_regression goes with synthetic_linear, classifiers with fashion_mnist, "
                           "click models with synthetic_clicks or criteo_tsv)");
  }
  if (c.model.embedding_dim < 1 || c.model.embedding_dim > 1024) {
    return InvalidArgument("model.embedding_dim: must be in [1, 1024], got " + std::to_string(c.model.embedding_dim));
  }
  if (d == "synthetic_clicks") return ValidateSyntheticClicks(c.data, c.cluster.workers);
  if (d == "criteo_tsv") return ValidateCriteoTsv(c.data);
  return Status::OK();
}

}  // namespace

Status ValidateJobConfig(const JobConfig& c) {
  RETURN_IF_ERROR(ValidateModelAndData(c));
  if (const std::string& a = c.cluster.advertise; a.find(',') != std::string::npos) {
    const int64_t entries = std::count(a.begin(), a.end(), ',') + 1;
    if (entries != c.cluster.servers) {
      return InvalidArgument("cluster.advertise lists " + std::to_string(entries) + " addresses for " +
                             std::to_string(c.cluster.servers) + " server(s): give one per server, in server order");
    }
  }
  for (int64_t h : c.model.hidden) {
    if (h < 1 || h > 65536) return InvalidArgument("model.hidden: layer sizes must be in [1, 65536]");
  }
  if (c.model.activation != "relu" && c.model.activation != "sigmoid" && c.model.activation != "tanh") {
    return InvalidArgument("model.activation: unknown activation '" + c.model.activation + "' (relu, sigmoid, tanh)");
  }
  if (c.model.classes < 2 || c.model.classes > 100000) return InvalidArgument("model.classes: must be in [2, 100000]");
  RETURN_IF_ERROR(Positive("data.examples", static_cast<double>(c.data.examples)));
  RETURN_IF_ERROR(Positive("data.features", static_cast<double>(c.data.features)));
  if (c.data.features > (1 << 24)) return InvalidArgument("data.features: at most 16777216");
  if (c.data.noise_stddev < 0) return InvalidArgument("data.noise_stddev: must be >= 0");
  if (c.data.train_limit < 0) return InvalidArgument("data.train_limit: must be >= 0");
  if (c.data.test_limit < 0) return InvalidArgument("data.test_limit: must be >= 0");
  RETURN_IF_ERROR(Positive("train.batch_size", static_cast<double>(c.train.batch_size)));
  RETURN_IF_ERROR(Positive("train.epochs", static_cast<double>(c.train.epochs)));
  if (c.train.max_steps < 0) return InvalidArgument("train.max_steps: must be >= 0");
  RETURN_IF_ERROR(Positive("train.log_every_steps", static_cast<double>(c.train.log_every_steps)));
  RETURN_IF_ERROR(Positive("optimizer.learning_rate", c.optimizer.learning_rate));
  RETURN_IF_ERROR(Optimizer::Create(c.optimizer).status());  // names the bad field
  const std::string& sched = c.schedule.kind;
  if (sched != "constant" && sched != "step" && sched != "exponential") {
    return InvalidArgument("optimizer.schedule: unknown schedule '" + sched + "' (constant, step, exponential)");
  }
  if (!(c.schedule.decay_rate > 0) || c.schedule.decay_rate > 1) {
    return InvalidArgument("optimizer.decay_rate: must be in (0, 1]");
  }
  RETURN_IF_ERROR(Positive("optimizer.decay_steps", static_cast<double>(c.schedule.decay_steps)));
  if (c.cluster.servers < 1 || c.cluster.servers > 1024) return InvalidArgument("cluster.servers: must be in [1, 1024]");
  if (c.cluster.workers < 1 || c.cluster.workers > 1024) return InvalidArgument("cluster.workers: must be in [1, 1024]");
  RETURN_IF_ERROR(Positive("cluster.timeout_ms", static_cast<double>(c.cluster.timeout_ms)));
  if (c.cluster.io_threads < 1 || c.cluster.io_threads > 64) return InvalidArgument("cluster.io_threads: must be in [1, 64]");
  if (c.cluster.split_threshold_bytes < 1) {
    // 0 would split every variable with enough rows, biases included.
    return InvalidArgument("cluster.split_threshold_bytes: must be >= 1 (variables above it are split by rows), got 0");
  }
  RETURN_IF_ERROR(Positive("cluster.sync_timeout_ms", static_cast<double>(c.cluster.sync_timeout_ms)));
  if (c.cluster.max_recoveries < 0) {
    return InvalidArgument("cluster.max_recoveries: must be >= 0, got " + std::to_string(c.cluster.max_recoveries));
  }
  if (c.cluster.consistency == Consistency::kSync && c.cluster.timeout_ms <= c.cluster.sync_timeout_ms) {
    // A push waits for the slowest worker; its deadline must outlast the step's.
    return InvalidArgument("cluster.timeout_ms: in sync mode it must exceed cluster.sync_timeout_ms (" +
                           std::to_string(c.cluster.sync_timeout_ms) + "), got " + std::to_string(c.cluster.timeout_ms));
  }
  if (c.cluster.staleness < 0 || c.cluster.staleness > 1000000) {
    return InvalidArgument("cluster.staleness: must be in [0, 1000000] (steps a worker may run ahead of the slowest), "
                           "got " + std::to_string(c.cluster.staleness));
  }
  if (c.snapshot.every_steps < 0) return InvalidArgument("snapshot.every_steps: must be >= 0");
  if (!(c.snapshot.every_secs >= 0)) return InvalidArgument("snapshot.every_secs: must be >= 0");
  if (c.snapshot.max_to_keep < 0) return InvalidArgument("snapshot.max_to_keep: must be >= 0");
  if (!(c.snapshot.keep_every_n_hours >= 0)) return InvalidArgument("snapshot.keep_every_n_hours: must be >= 0");
  if (c.data.kind == "synthetic_linear" && c.data.examples < c.cluster.workers) {
    return InvalidArgument("data.examples: " + std::to_string(c.data.examples) + " examples cannot feed " +
                           std::to_string(c.cluster.workers) + " workers");
  }
  return ValidateSizes(c);
}

namespace {

// Applies one "a.b.c=VALUE" override to `root` (a map).
Status ApplyOverride(const std::string& item, YAML::Node root) {
  const size_t eq = item.find('=');
  if (eq == std::string::npos || eq == 0) {
    return InvalidArgument("--set '" + item + "': expected section.field=VALUE, e.g. train.batch_size=256");
  }
  const std::string key = item.substr(0, eq);
  std::vector<std::string> path;
  for (size_t begin = 0;;) {
    const size_t dot = key.find('.', begin);
    path.push_back(key.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (path.back().empty()) return InvalidArgument("--set '" + item + "': '" + key + "' has an empty part");
    if (dot == std::string::npos) break;
    begin = dot + 1;
  }
  YAML::Node value;
  try {
    value = YAML::Load(item.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    return InvalidArgument("--set '" + item + "': the value is not valid YAML: " + e.what());
  }
  YAML::Node node = root;
  std::string where;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    where += (where.empty() ? "" : ".") + path[i];
    YAML::Node child = node[path[i]];
    if (!child.IsDefined() || child.IsNull()) {
      node[path[i]] = YAML::Node(YAML::NodeType::Map);
      child = node[path[i]];
    } else if (!child.IsMap()) {
      return InvalidArgument("--set '" + item + "': '" + where + "' is not a section");
    }
    node.reset(child);
  }
  node[path.back()] = value;
  return Status::OK();
}

}  // namespace

StatusOr<JobConfig> ParseJobConfig(const std::string& text, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("job file is not valid YAML: ") + e.what());
  }
  // An empty file (or one of comments only) is a mistake, not a request for
  // the default job; `{}` asks for every default.
  if (root.IsNull()) return InvalidArgument("the job file is empty (write {} for the default job)");
  JobConfig c;
  c.text = text;
  if (!overrides.empty()) {
    if (!root.IsMap()) return InvalidArgument("the job file is not a map of sections, so --set cannot apply");
    std::string applied;
    for (const std::string& item : overrides) {
      RETURN_IF_ERROR(ApplyOverride(item, root));
      applied += " --set " + item;
    }
    c.text = "# the job file with" + applied + "\n" + YAML::Dump(root) + "\n";
  }
  try {
    RETURN_IF_ERROR(ParseRoot(root, &c));
  } catch (const YAML::Exception& e) {  // a shape no field expects, which no check above foresaw
    return InvalidArgument(std::string("job file: ") + e.what());
  }
  RETURN_IF_ERROR(ValidateJobConfig(c));
  return c;
}

StatusOr<JobConfig> LoadJobConfig(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgument("'" + path + "' is a directory, not a job file (e.g. launch/examples/linear_regression.yaml)");
  }
  std::ifstream in(path);
  if (!in) return NotFound("cannot open job file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return DataLoss("cannot read job file '" + path + "'");
  StatusOr<JobConfig> c = ParseJobConfig(ss.str(), overrides);
  if (!c.ok()) return c.status().WithContext(path);
  return c;
}

}  // namespace cairn
