#include "launch/job_config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(JobConfig, EmptyFileGivesTheDefaults) {
  auto c = ParseJobConfig("{}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.kind, "linear_regression");
  EXPECT_EQ(c->cluster.servers, 1);
  EXPECT_EQ(c->optimizer.kind, "sgd");
}

TEST(JobConfig, FieldsAreRead) {
  auto c = ParseJobConfig(R"(
name: x
data: {examples: 500, features: 20, seed: 3}
train: {batch_size: 10, epochs: 3, max_steps: 7}
optimizer: {kind: sgd, learning_rate: 0.5}
cluster: {servers: 2, workers: 3, bind: 0.0.0.0, timeout_ms: 100}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "x");
  EXPECT_EQ(c->data.examples, 500);
  EXPECT_EQ(c->data.features, 20);
  EXPECT_EQ(c->train.batch_size, 10);
  EXPECT_EQ(c->train.max_steps, 7);
  EXPECT_DOUBLE_EQ(c->optimizer.learning_rate, 0.5);
  EXPECT_EQ(c->cluster.workers, 3);
  EXPECT_EQ(c->cluster.bind, "0.0.0.0");
}

void ExpectErrorNaming(const std::string& yaml, const std::string& field) {
  auto c = ParseJobConfig(yaml);
  ASSERT_FALSE(c.ok()) << yaml;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(field), std::string::npos) << c.status();
}

TEST(JobConfig, ErrorsNameTheField) {
  ExpectErrorNaming("train: {batch_size: many}", "train.batch_size");
  ExpectErrorNaming("train: {batch_size: 0}", "train.batch_size");
  ExpectErrorNaming("train: {bach_size: 10}", "train.bach_size");
  ExpectErrorNaming("cluster: {servers: -1}", "cluster.servers");
  ExpectErrorNaming("cluster: {consistency: eventually}", "cluster.consistency");
  ExpectErrorNaming("optimizer: {kind: sgd, learning_rate: -1}", "optimizer.learning_rate");
  ExpectErrorNaming("optimizer: {kind: lion}", "optimizer.kind");
  ExpectErrorNaming("model: {kind: transformer}", "model.kind");
  ExpectErrorNaming("model: {kind: mlp, hidden: [256, x]}", "model.hidden");
  ExpectErrorNaming("model: {kind: mlp}\ndata: {kind: fashion_mnist}\noptimizer: {kind: adam, schedule: cosine}",
                    "optimizer.schedule");
  ExpectErrorNaming("model: {kind: mlp}", "model.kind");  // mlp on synthetic_linear data
  ExpectErrorNaming("surprise: 1", "surprise");
  ExpectErrorNaming("data: [1, 2]", "data");
}

// cairn train --set section.field=VALUE: the same checks as the file.
TEST(JobConfig, SetOverridesAndAddsFields) {
  auto c = ParseJobConfig("model: {kind: mlp, hidden: [256, 128]}\ndata: {kind: fashion_mnist}\ntrain: {batch_size: 10}",
                          {"train.batch_size=256", "model.hidden=[1024, 1024]", "optimizer.kind=adam",
                           "cluster.consistency=sync", "train.overlap=false"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->train.batch_size, 256);
  EXPECT_EQ(c->model.hidden, (std::vector<int64_t>{1024, 1024}));
  EXPECT_EQ(c->optimizer.kind, "adam");
  EXPECT_EQ(c->cluster.consistency, Consistency::kSync);
  EXPECT_FALSE(c->train.overlap);
  // The text kept (in every snapshot's manifest) is the job as run.
  EXPECT_NE(c->text.find("--set train.batch_size=256"), std::string::npos) << c->text;
  auto again = ParseJobConfig(c->text);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->train.batch_size, 256);
  EXPECT_EQ(again->model.hidden, (std::vector<int64_t>{1024, 1024}));
}

TEST(JobConfig, SetErrorsNameTheFieldOrTheItem) {
  auto named = [](const std::vector<std::string>& sets, const std::string& field) {
    auto c = ParseJobConfig("train: {batch_size: 10}", sets);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(field), std::string::npos) << c.status();
  };
  named({"train.batch_size=many"}, "train.batch_size");
  named({"train.bach_size=10"}, "train.bach_size");
  named({"train.batch_size.x=1"}, "'train.batch_size' is not a section");
  named({"batch_size"}, "section.field=VALUE");
  named({"=3"}, "section.field=VALUE");
  named({"train..x=1"}, "empty part");
  named({"train.batch_size=[1"}, "not valid YAML");
}

TEST(JobConfig, InvalidYamlIsAnError) {
  auto c = ParseJobConfig("train: {batch_size: [");
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
}

// Found by the job-file fuzzer (tests/fuzz/crashes/fuzz_job_config): a key
// that is a map or a list once escaped as a yaml-cpp exception.
TEST(JobConfig, AKeyThatIsNotANameIsAnError) {
  for (const char* text : {"{{}: 1}", "train: {[batch_size]: 10}", "[a]: 1", "model: {{kind: mlp}: x}"}) {
    StatusOr<JobConfig> c = ParseJobConfig(text);
    EXPECT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << text << ": " << c.status();
  }
}

TEST(JobConfig, AnEmptyJobIsAnErrorNotTheDefaultJob) {
  for (const char* text : {"", "\n\n", "# only a comment\n"}) {
    auto c = ParseJobConfig(text);
    ASSERT_FALSE(c.ok()) << "'" << text << "'";
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find("empty"), std::string::npos) << c.status();
  }
}

TEST(JobConfig, AnEmptyFileOrADirectoryIsAnErrorNamingThePath) {
  const std::string dir = ::testing::TempDir() + "job_config_test_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const std::string empty = dir + "/empty.yaml";
  std::ofstream(empty).close();
  auto c = LoadJobConfig(empty);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(empty + ": the job file is empty"), std::string::npos) << c.status();
  c = LoadJobConfig(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("'" + dir + "' is a directory"), std::string::npos) << c.status();
  std::filesystem::remove_all(dir);
}

TEST(JobConfig, SizesThatCannotBeAllocatedAreErrorsNamingTheField) {
  ExpectErrorNaming("train: {batch_size: 100000000}", "train.batch_size");
  // 1M examples of 1000 features is 1G values in one batch.
  ExpectErrorNaming("data: {features: 1000}\ntrain: {batch_size: 1000000}", "train.batch_size");
  ExpectErrorNaming("data: {examples: 1000000000}", "data.examples");
  ExpectErrorNaming("data: {examples: 10000000, features: 1000}", "data.examples");  // 10G values
  ExpectErrorNaming("model: {kind: mlp, hidden: [65536, 65536]}\ndata: {kind: fashion_mnist}", "(dense 'dense_1'): 65536 x 65536");
  ExpectErrorNaming("model: {kind: softmax_regression, classes: 100000}\ndata: {kind: fashion_mnist}\n"
                    "train: {batch_size: 10000}",
                    "train.batch_size");
  ExpectErrorNaming("train: {epochs: 1000000000000}", "train.epochs");
  ExpectErrorNaming("cluster: {timeout_ms: 100000000000}", "cluster.timeout_ms");
  ExpectErrorNaming("cluster: {sync_timeout_ms: 100000000000}", "cluster.sync_timeout_ms");
  // The largest allowed values still parse.
  auto c = ParseJobConfig("train: {batch_size: 1048576}\ndata: {features: 256}");
  EXPECT_TRUE(c.ok()) << c.status();
}

TEST(JobConfig, SspTakesAStalenessBoundAndATimeoutLongerThanItsWait) {
  auto c = ParseJobConfig("cluster: {consistency: ssp, staleness: 5}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cluster.consistency, Consistency::kSsp);
  EXPECT_EQ(c->cluster.staleness, 5);
  auto d = ParseJobConfig("cluster: {consistency: ssp}");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->cluster.staleness, 3);
  ExpectErrorNaming("cluster: {consistency: ssp, staleness: -1}", "cluster.staleness");
  ExpectErrorNaming("cluster: {consistency: bsp}", "async, sync or ssp");
}

TEST(JobConfig, AZeroSplitThresholdOrANegativeSeedIsAnError) {
  ExpectErrorNaming("cluster: {split_threshold_bytes: 0}", "cluster.split_threshold_bytes");
  ExpectErrorNaming("train: {seed: -1}", "train.seed: expected a non-negative integer");
  ExpectErrorNaming("model: {seed: -1}", "model.seed");
  ExpectErrorNaming("data: {seed: -1}", "data.seed");
}

TEST(JobConfig, SyntheticClicksFieldsAreRead) {
  auto c = ParseJobConfig(R"(
model: {kind: click_wide_deep, hidden: [32, 8], embedding_dim: 4}
data: {kind: synthetic_clicks, seed: 5, rows: 1000, test_rows: 300, vocab_min: 2, vocab_max: 5000,
       zipf_exponent: 1.3, int_missing: 0.1, cat_missing: 0.2, click_rate: 0.3}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.kind, "click_wide_deep");
  EXPECT_EQ(c->model.embedding_dim, 4);
  EXPECT_EQ(c->data.seed, 5u);
  EXPECT_EQ(c->data.rows, 1000);
  EXPECT_EQ(c->data.test_rows, 300);
  EXPECT_EQ(c->data.vocab_min, 2);
  EXPECT_EQ(c->data.vocab_max, 5000);
  EXPECT_DOUBLE_EQ(c->data.zipf_exponent, 1.3);
  EXPECT_DOUBLE_EQ(c->data.int_missing, 0.1);
  EXPECT_DOUBLE_EQ(c->data.cat_missing, 0.2);
  EXPECT_DOUBLE_EQ(c->data.click_rate, 0.3);
}

TEST(JobConfig, SyntheticClicksDefaultToTwoMillionRows) {
  auto c = ParseJobConfig("model: {kind: click_logistic}\ndata: {kind: synthetic_clicks}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data.rows, 2000000);
  EXPECT_EQ(c->data.test_rows, 200000);
  EXPECT_TRUE(c->data.vocab.empty());
  EXPECT_EQ(c->model.embedding_dim, 16);
}

TEST(JobConfig, CriteoTsvTakesOneFileOrAList) {
  auto one = ParseJobConfig("model: {kind: click_logistic}\ndata: {kind: criteo_tsv, paths: day_0.tsv}");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->data.paths, std::vector<std::string>{"day_0.tsv"});
  auto two = ParseJobConfig(
      "model: {kind: click_logistic}\n"
      "data: {kind: criteo_tsv, paths: [a.tsv, b.tsv.gz], test_paths: [c.tsv], skip_malformed: true}");
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->data.paths, (std::vector<std::string>{"a.tsv", "b.tsv.gz"}));
  EXPECT_EQ(two->data.test_paths, std::vector<std::string>{"c.tsv"});
  EXPECT_TRUE(two->data.skip_malformed);
}

TEST(JobConfig, ClickDataErrorsNameTheField) {
  const std::string clicks = "model: {kind: click_logistic}\ndata: {kind: synthetic_clicks, ";
  ExpectErrorNaming(clicks + "rows: 0}", "data.rows");
  ExpectErrorNaming(clicks + "rows: 1}", "data.rows");  // fewer than the 2 workers
  ExpectErrorNaming(clicks + "test_rows: -1}", "data.test_rows");
  ExpectErrorNaming(clicks + "vocab: [10, 20]}", "data.vocab");
  ExpectErrorNaming(clicks + "vocab_min: 0}", "data.vocab_min");
  ExpectErrorNaming(clicks + "vocab_min: 100, vocab_max: 50}", "data.vocab_max");
  ExpectErrorNaming(clicks + "zipf_exponent: 0}", "data.zipf_exponent");
  ExpectErrorNaming(clicks + "int_missing: 1.5}", "data.int_missing");
  ExpectErrorNaming(clicks + "cat_missing: -0.1}", "data.cat_missing");
  ExpectErrorNaming(clicks + "click_rate: 1}", "data.click_rate");
  ExpectErrorNaming("model: {kind: click_logistic}\ndata: {kind: criteo_tsv}", "data.paths");
  ExpectErrorNaming("model: {kind: click_logistic}\ndata: {kind: criteo_tsv, paths: [a, '']}", "data.paths");
  ExpectErrorNaming("model: {kind: click_logistic}\ndata: {kind: criteo_tsv, paths: {a: 1}}", "data.paths");
  ExpectErrorNaming("model: {kind: click_logistic}", "model.kind");  // on synthetic_linear data
  ExpectErrorNaming("model: {kind: mlp}\ndata: {kind: synthetic_clicks}", "model.kind");
  ExpectErrorNaming("model: {kind: click_wide_deep, embedding_dim: 0}\ndata: {kind: synthetic_clicks}",
                    "model.embedding_dim");
  ExpectErrorNaming("model: {kind: click_wide_deep, hidden: [0]}\ndata: {kind: synthetic_clicks}", "model.hidden");
  ExpectErrorNaming("data: {kind: clicks}", "data.kind");
}

TEST(JobConfig, ALayerListIsReadAndChecked) {
  auto c = ParseJobConfig(R"(
model:
  kind: layers
  layers:
    - {type: normalize}
    - {type: dense, units: 32, activation: relu, seed: 9}
    - {type: batch_norm, name: bn, momentum: 0.9, epsilon: 0.01}
    - {type: dropout, rate: 0.25}
    - {type: dense, units: 10}
    - {type: softmax}
data: {kind: fashion_mnist}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->model.layers.size(), 6u);
  EXPECT_EQ(c->model.layers[1].units, 32);
  EXPECT_EQ(c->model.layers[1].activation, "relu");
  EXPECT_EQ(c->model.layers[1].seed, 9);
  EXPECT_EQ(c->model.layers[2].name, "bn");
  EXPECT_DOUBLE_EQ(c->model.layers[2].momentum, 0.9);
  EXPECT_DOUBLE_EQ(c->model.layers[3].rate, 0.25);
  const std::string fm = "\ndata: {kind: fashion_mnist}";
  ExpectErrorNaming("model: {kind: layers, layers: [{type: dense, unitz: 3}, {type: softmax}]}" + fm,
                    "model.layers[0].unitz: unknown field");
  ExpectErrorNaming("model: {kind: layers, layers: [{units: 3}, {type: softmax}]}" + fm, "model.layers[0].type: missing");
  ExpectErrorNaming("model: {kind: layers, layers: [{type: dense, units: 0}, {type: softmax}]}" + fm,
                    "model.layers[0] (dense 'output').units");
  ExpectErrorNaming("model: {kind: layers, layers: [{type: dense, units: 1}, {type: logistic}]}" + fm,
                    "model.layers[1] (logistic): data.kind fashion_mnist has class labels");
  ExpectErrorNaming("model: {kind: layers}" + fm, "model.layers: kind layers needs a list");
  // Outside sync mode a fast moving average can oscillate on stale reads.
  const std::string bn = "model: {kind: layers, layers: [{type: batch_norm, momentum: 0.5}, {type: dense, units: 10}, "
                         "{type: softmax}]}" + fm;
  ExpectErrorNaming(bn, "model.layers[0] (batch_norm).momentum: at least 0.9 unless cluster.consistency is sync, got 0.5");
  EXPECT_TRUE(ParseJobConfig(bn + "\ncluster: {consistency: sync}").ok());
  ExpectErrorNaming("model: {kind: layers, layers: [{type: dense, units: 10, seed: -2}, {type: softmax}]}" + fm,
                    "model.layers[0].seed: must be >= 0");
  ExpectErrorNaming("model: {kind: mlp, layers: [{type: softmax}]}" + fm, "model.layers: a list of layers goes with kind layers");
  ExpectErrorNaming("model: {kind: layers, layers: {type: softmax}}" + fm, "model.layers: expected a list");
  // The ids of click logs feed embeddings; Fashion-MNIST has none.
  ExpectErrorNaming("model: {kind: layers, layers: [{type: embedding, inputs: [ids]}, {type: dense, units: 10}, "
                    "{type: softmax}]}" + fm,
                    "no input or earlier layer named 'ids'");
}

TEST(JobConfig, AClickLayerListTakesEmbeddingsOfChosenSlots) {
  auto c = ParseJobConfig(R"(
model:
  kind: layers
  layers:
    - {type: embedding, name: c1, inputs: [ids], slots: [0], dim: 8}
    - {type: embedding, name: rest, inputs: [ids], slots: [1, 2, 25], combiner: sum, dim: 8}
    - {type: normalize, inputs: [features]}
    - {type: concat, inputs: [c1, rest, normalize]}
    - {type: dense, units: 1}
    - {type: logistic}
data: {kind: synthetic_clicks, rows: 1000, test_rows: 100}
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.layers[1].slots, (std::vector<int64_t>{1, 2, 25}));
  ExpectErrorNaming("model: {kind: layers, layers: [{type: embedding, inputs: [ids], slots: [26]}, {type: dense, "
                    "units: 1}, {type: logistic}]}\ndata: {kind: synthetic_clicks, rows: 1000, test_rows: 100}",
                    "model.layers[0] (embedding 'embedding_0').slots: slot 26 outside [0, 26)");
}

TEST(JobConfig, TheLayerExamplesParse) {
  auto c = LoadJobConfig(std::string(CAIRN_SOURCE_DIR) + "/launch/examples/fashion_mnist_batch_norm.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.kind, "layers");
  EXPECT_EQ(c->model.layers.back().type, "softmax");
}

TEST(JobConfig, TheClickExamplesParse) {
  for (const char* name : {"click_logistic_ftrl.yaml", "click_wide_deep.yaml"}) {
    auto c = LoadJobConfig(std::string(CAIRN_SOURCE_DIR) + "/launch/examples/" + name);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status();
    EXPECT_EQ(c->data.rows, 2000000) << name;
    EXPECT_EQ(c->train.epochs, 1) << name;
  }
}

TEST(JobConfig, MissingFileIsNotFound) {
  EXPECT_EQ(LoadJobConfig("/nonexistent/job.yaml").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace cairn
