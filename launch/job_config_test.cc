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

TEST(JobConfig, InvalidYamlIsAnError) {
  auto c = ParseJobConfig("train: {batch_size: [");
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
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
  ExpectErrorNaming("model: {kind: mlp, hidden: [65536, 65536]}\ndata: {kind: fashion_mnist}", "model: layer 1");
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

TEST(JobConfig, AZeroSplitThresholdOrANegativeSeedIsAnError) {
  ExpectErrorNaming("cluster: {split_threshold_bytes: 0}", "cluster.split_threshold_bytes");
  ExpectErrorNaming("train: {seed: -1}", "train.seed: expected a non-negative integer");
  ExpectErrorNaming("model: {seed: -1}", "model.seed");
  ExpectErrorNaming("data: {seed: -1}", "data.seed");
}

TEST(JobConfig, MissingFileIsNotFound) {
  EXPECT_EQ(LoadJobConfig("/nonexistent/job.yaml").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace cairn
