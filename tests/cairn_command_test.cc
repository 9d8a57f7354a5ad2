// The `cairn` command as a user runs it: real processes, real TCP, real
// mpirun. Each run is bounded in time.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/subprocess.h"

namespace cairn {
namespace {

using std::chrono::seconds;
using testing::RunCommand;

const std::string kCairn = CAIRN_BINARY;
const std::string kExample = std::string(CAIRN_SOURCE_DIR) + "/launch/examples/linear_regression.yaml";

std::string TempPath(const std::string& name) {
  return std::string(::testing::TempDir()) + "/cairn_" + std::to_string(getpid()) + "_" + name;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::vector<std::string> Mpirun(int np, std::vector<std::string> rest) {
  std::vector<std::string> argv = {CAIRN_MPIEXEC, "-np", std::to_string(np), "--oversubscribe", "--allow-run-as-root",
                                   "--mca", "btl", "self,tcp"};
  argv.insert(argv.end(), rest.begin(), rest.end());
  return argv;
}

TEST(CairnCommand, EverySubcommandHasHelp) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"}, {"train", "--help"}, {"bench", "--help"},
                                        {"bench", "pushpull", "--help"}}) {
    args.insert(args.begin(), kCairn);
    auto r = RunCommand(args, seconds(30));
    EXPECT_EQ(r.exit_code, 0) << args[1] << ": " << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
  }
}

TEST(CairnCommand, LocalExampleJobLearnsTheTrueWeights) {
  const std::string summary = TempPath("local.json");
  auto r = RunCommand({kCairn, "train", kExample, "--local", "--servers", "2", "--workers", "2", "--summary", summary},
                      seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json s = ReadJson(summary);
  EXPECT_EQ(s["mode"], "local");
  EXPECT_EQ(s["authenticated"], true);  // with a secret made for the job: nothing to configure
  EXPECT_EQ(s["servers"], 2);
  EXPECT_EQ(s["global_step"], 2000);  // 2 workers x 2 epochs x 500 batches
  EXPECT_LT(s["metrics"]["relative_distance_to_true_weights"].get<double>(), 0.01) << s.dump();
  EXPECT_LT(s["final_loss"].get<double>(), 0.01);
  EXPECT_GT(s["examples_per_sec"].get<double>(), 0);
  EXPECT_NE(r.output.find("loss"), std::string::npos);  // progress lines
}

TEST(CairnCommand, ALocalJobRunsInsecureOnlyWhenToldAndSaysSo) {
  const std::string summary = TempPath("insecure_local.json");
  auto r = RunCommand({kCairn, "train", kExample, "--local", "--insecure", "--max-steps", "20", "--summary", summary},
                      seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("running without authentication (--insecure)"), std::string::npos) << r.output;
  EXPECT_EQ(ReadJson(summary)["authenticated"], false);
}

TEST(CairnCommand, EveryWorkerLogsItsProgressAndADoneLine) {
  auto r = RunCommand({kCairn, "train", kExample, "--local", "--workers", "3", "--max-steps", "200", "--log-every",
                       "100"},
                      seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int w = 1; w < 3; ++w) {
    const std::string me = "worker " + std::to_string(w) + ": ";
    EXPECT_NE(r.output.find(me + "epoch 1/2  step 100/200 (50%)  loss "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(me + "epoch 1/2  step 200/200 (100%)  loss "), std::string::npos) << r.output;
  }
  for (int w = 0; w < 3; ++w) {
    EXPECT_NE(r.output.find("worker " + std::to_string(w) + ": done: 200 steps (200 in this run) in "),
              std::string::npos)
        << r.output;
  }
  EXPECT_NE(r.output.find("done: global step 600"), std::string::npos) << r.output;
}

TEST(CairnCommand, ALocalSspJobTrainsAndReportsWhereEachWorkersTimeWent) {
  const std::string summary = TempPath("ssp.json");
  auto r = RunCommand({kCairn, "train", kExample, "--local", "--workers", "3", "--consistency", "ssp", "--max-steps",
                       "200", "--log-every", "100", "--summary", summary},
                      seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json s = ReadJson(summary);
  EXPECT_EQ(s["consistency"], "ssp");
  EXPECT_EQ(s["staleness"], 3);  // the default bound
  EXPECT_EQ(s["global_step"], 600);
  ASSERT_EQ(s["workers_time"].size(), 3u) << s.dump();
  for (const auto& w : s["workers_time"]) {
    EXPECT_GT(w["pull_seconds"].get<double>(), 0) << w.dump();
    EXPECT_GT(w["push_seconds"].get<double>(), 0) << w.dump();
    EXPECT_LT(w["pull_seconds"].get<double>() + w["push_seconds"].get<double>(), w["seconds"].get<double>() + 1e-3);
  }
  EXPECT_NE(r.output.find("worker 2: epoch 1/2  step 100/200 (50%)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  pull "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(" s in pulls, "), std::string::npos) << r.output;
}

TEST(CairnCommand, MpirunJobWithOneServerAndTwoWorkersLearnsTheTrueWeights) {
  const std::string summary = TempPath("mpi.json");
  auto r = RunCommand(Mpirun(3, {kCairn, "train", kExample, "--servers", "1", "--summary", summary}), seconds(300));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json s = ReadJson(summary);
  EXPECT_EQ(s["mode"], "mpirun");
  EXPECT_EQ(s["authenticated"], true);  // rank 0's secret, broadcast: nothing to configure
  EXPECT_EQ(s["servers"], 1);
  EXPECT_EQ(s["workers"], 2);
  EXPECT_EQ(s["global_step"], 2000);
  EXPECT_LT(s["metrics"]["relative_distance_to_true_weights"].get<double>(), 0.01) << s.dump();
}

// The MLP example on a Fashion-MNIST subset (to keep CI short).
std::string SubsetJob(const std::string& name, int64_t train, int64_t test) {
  const std::string job = TempPath(name + ".yaml");
  std::ifstream in(std::string(CAIRN_SOURCE_DIR) + "/launch/examples/fashion_mnist_mlp.yaml");
  std::stringstream text;
  text << in.rdbuf();
  std::string yaml = text.str();
  const std::string dir_line = "  dir: /usr/share/datasets/fashion-mnist";
  yaml.replace(yaml.find(dir_line), dir_line.size(),
               dir_line + "\n  train_limit: " + std::to_string(train) + "\n  test_limit: " + std::to_string(test));
  std::ofstream(job) << yaml;
  return job;
}

TEST(CairnCommand, MpirunMlpJobOnTwoServersAndTwoSyncWorkersLearnsFashionMnist) {
  const std::string summary = TempPath("mlp_mpi.json");
  const std::string job = SubsetJob("mlp_mpi", 12000, 2000);
  auto r = RunCommand(Mpirun(4, {kCairn, "train", job, "--servers", "2", "--epochs", "2", "--consistency", "sync",
                                 "--summary", summary}),
                      seconds(300));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json s = ReadJson(summary);
  EXPECT_EQ(s["mode"], "mpirun");
  EXPECT_EQ(s["servers"], 2);
  EXPECT_EQ(s["workers"], 2);
  // Sync: one global step per round of both workers: 2 epochs x 12000 / (2 workers x batch 128).
  EXPECT_EQ(s["global_step"], 2 * (12000 / 256));
  EXPECT_GT(s["test_accuracy"].get<double>(), 0.78) << s.dump();
  EXPECT_NE(r.output.find("test accuracy"), std::string::npos);  // the chief's epoch-end evaluation
}

// The layer-list example with batch normalization, on a subset: it learns,
// and its snapshot holds the moving statistics, moved off their initial 0
// and 1, beside the weights. Sync, so the accuracy does not depend on how
// the two workers interleave (async under a loaded ctest -j2 once fell
// below the bound; sync gives 0.8415 every run).
TEST(CairnCommand, TheBatchNormLayersExampleLearnsAndSnapshotsItsMovingStatistics) {
  const std::string job = std::string(CAIRN_SOURCE_DIR) + "/launch/examples/fashion_mnist_batch_norm.yaml";
  const std::string dir = TempPath("bn_model"), summary = TempPath("bn.json");
  auto r = RunCommand({kCairn, "train", job, "--local", "--epochs", "2", "--consistency", "sync", "--model-dir", dir,
                       "--fresh", "--set",
                       "data.train_limit=12000", "--set", "data.test_limit=2000", "--summary", summary},
                      seconds(300));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json s = ReadJson(summary);
  EXPECT_GT(s["test_accuracy"].get<double>(), 0.80) << s.dump();
  auto inspect = RunCommand({kCairn, "inspect", dir}, seconds(60));
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  for (const char* name : {"bn_0/moving_mean", "bn_0/moving_variance", "bn_1/moving_mean", "bn_1/moving_variance"}) {
    std::istringstream lines(inspect.output);
    std::string line;
    bool found = false;
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string n, dtype, shape, trainable, slot_of;
      double min = 0, max = 0, mean = 0;
      if (!(fields >> n) || n != name) continue;
      found = true;
      fields >> dtype >> shape >> trainable >> slot_of >> min >> max >> mean;
      EXPECT_EQ(trainable, "no") << line;
      EXPECT_LT(min, max) << line;  // moved, per feature, off the constant it started at
    }
    EXPECT_TRUE(found) << name << " is not in the snapshot:\n" << inspect.output;
  }
  EXPECT_NE(inspect.output.find("MOVING_AVERAGE_VARIABLES: bn_0/moving_mean"), std::string::npos) << inspect.output;
}

TEST(CairnCommand, LocalSyncRunsGiveTheSameResultTwice) {
  const std::string job = SubsetJob("mlp_sync", 2000, 500);
  std::vector<double> losses;
  for (int run = 0; run < 2; ++run) {
    const std::string summary = TempPath("sync" + std::to_string(run) + ".json");
    auto r = RunCommand({kCairn, "train", job, "--local", "--workers", "2", "--consistency", "sync", "--epochs", "1",
                         "--summary", summary},
                        seconds(120));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    nlohmann::json s = ReadJson(summary);
    losses.push_back(s["test_accuracy"].get<double>() * 1e6 + s["final_loss"].get<double>());
  }
  EXPECT_EQ(losses[0], losses[1]);
}

// --metrics: every worker's progress and the snapshot events, one JSON
// object per line; `cairn plot` draws the loss curve from it.
TEST(CairnCommand, MetricsFileHoldsEveryWorkersProgressAndSnapshotsAndPlotsToAPng) {
  const std::string job = SubsetJob("metrics", 2000, 200);
  const std::string metrics = TempPath("m.jsonl");
  const std::string model_dir = TempPath("metrics_model");
  auto r = RunCommand({kCairn, "train", job, "--local", "--servers", "1", "--workers", "2", "--epochs", "2",
                       "--log-every", "4", "--metrics", metrics, "--model-dir", model_dir, "--fresh",
                       "--snapshot-every-steps", "10", "--set", "train.batch_size=50"},
                      seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(metrics);
  std::string line;
  std::map<int, int> progress;  // by worker
  int snapshots = 0, committed = 0, evaluations = 0;
  int64_t last_step = -1;
  while (std::getline(in, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("event") && j.contains("time") && j.contains("worker")) << line;
    const std::string event = j["event"];
    if (event == "progress") {
      ++progress[j["worker"].get<int>()];
      for (const char* field : {"step", "global_step", "loss", "examples_per_sec", "learning_rate", "seconds"}) {
        EXPECT_TRUE(j.contains(field)) << field << " missing: " << line;
      }
      EXPECT_DOUBLE_EQ(j["learning_rate"].get<double>(), 0.001);
      if (j.contains("test_accuracy")) ++evaluations;
      if (j["worker"] == 0) {
        EXPECT_GT(j["step"].get<int64_t>(), last_step);
        last_step = j["step"];
      }
    } else if (event == "snapshot") {
      ++snapshots;
      EXPECT_GE(j["seconds"].get<double>(), 0);
    } else if (event == "snapshot_committed") {
      ++committed;
    }
  }
  // 1000 examples per worker at batch 50: 20 steps an epoch, 40 in all; a line every 4.
  EXPECT_EQ(last_step, 40);
  EXPECT_GE(progress[0], 10);
  EXPECT_GE(progress[1], 10);
  EXPECT_EQ(evaluations, 2);  // the chief, at each epoch end
  EXPECT_GE(snapshots, 2);
  EXPECT_GE(committed, 1);

  const std::string png = TempPath("loss.png");
  auto plot = RunCommand({kCairn, "plot", metrics, "--out", png, "--x", "seconds"}, seconds(60));
  ASSERT_EQ(plot.exit_code, 0) << plot.output;
  std::ifstream image(png, std::ios::binary);
  char magic[8] = {};
  image.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  std::ifstream script(png + ".d/plot.gp");
  std::stringstream gp;
  gp << script.rdbuf();
  EXPECT_NE(gp.str().find("worker 1"), std::string::npos) << gp.str();  // both workers' curves
  EXPECT_NE(gp.str().find("test accuracy"), std::string::npos) << gp.str();

  auto bad = RunCommand({kCairn, "plot", job, "--out", png}, seconds(60));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("not a metrics line"), std::string::npos) << bad.output;
}

TEST(CairnCommand, ASetOverrideIsCheckedAsTheFileIs) {
  auto r = RunCommand({kCairn, "train", kExample, "--in-process", "--set", "train.batch_size=lots"}, seconds(60));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("train.batch_size"), std::string::npos) << r.output;
  auto ok = RunCommand({kCairn, "train", kExample, "--in-process", "--set", "train.max_steps=7", "--summary",
                        TempPath("set.json")},
                       seconds(60));
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(ReadJson(TempPath("set.json"))["global_step"], 7);
}

TEST(CairnCommand, InProcessRunHasNoServers) {
  const std::string job = SubsetJob("inproc", 1000, 200);
  const std::string summary = TempPath("inproc.json");
  auto r = RunCommand({kCairn, "train", job, "--in-process", "--epochs", "1", "--summary", summary}, seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  nlohmann::json s = ReadJson(summary);
  EXPECT_EQ(s["mode"], "in-process");
  EXPECT_EQ(s["servers"], 0);
  EXPECT_EQ(s["batch_size"], 128);
  EXPECT_GT(s["examples_per_sec"].get<double>(), 0);
}

TEST(CairnCommand, TestLimitFlagOverridesTheJobsTestLimit) {
  const std::string job = SubsetJob("testlimit", 1000, 200);
  auto r = RunCommand({kCairn, "train", job, "--in-process", "--max-steps", "1", "--test-limit", "7"}, seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1000 training examples of 784 features, 7 test examples"), std::string::npos) << r.output;
}

// A model directory holding a snapshot of the linear job with `features`
// features, and a job file of that job with `other_features`: its restore
// fails on the chief (shape mismatch).
std::string MismatchedModelDir(const std::string& name, const std::string& job) {
  const std::string dir = TempPath(name);
  const std::string saved = TempPath(name + "_saved.yaml");
  const auto linear = [](int features) {
    return "model: {kind: linear_regression}\ndata: {kind: synthetic_linear, examples: 2000, features: " +
           std::to_string(features) + "}\ntrain: {batch_size: 20, epochs: 1}\noptimizer: {kind: sgd}\n";
  };
  std::ofstream(saved) << linear(300);
  std::ofstream(job) << linear(200);
  auto r = RunCommand({kCairn, "train", saved, "--local", "--servers", "2", "--workers", "1", "--max-steps", "5",
                       "--model-dir", dir},
                      seconds(120));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return dir;
}

TEST(CairnCommand, ARestoreThatFailsOnTheChiefEndsALocalJobAtOnceWithItsMessage) {
  const std::string job = TempPath("mismatch_local.yaml");
  const std::string dir = MismatchedModelDir("mismatch_local", job);
  const auto start = std::chrono::steady_clock::now();
  // Without the chief's word, worker 1 would wait 300 s for it.
  auto r = RunCommand({kCairn, "train", job, "--local", "--servers", "2", "--workers", "2", "--model-dir", dir},
                      seconds(120));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_LT(took, 30.0) << r.output;
  EXPECT_NE(r.output.find("worker 0: resuming from " + dir), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("linear/w"), std::string::npos) << r.output;  // the mismatch, named
}

TEST(CairnCommand, ARestoreThatFailsOnTheChiefEndsAnMpirunJobAtOnceWithItsMessage) {
  const std::string job = TempPath("mismatch_mpi.yaml");
  const std::string dir = MismatchedModelDir("mismatch_mpi", job);
  const auto start = std::chrono::steady_clock::now();
  auto r = RunCommand(Mpirun(4, {kCairn, "train", job, "--servers", "2", "--model-dir", dir}), seconds(120));
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_LT(took, 60.0) << r.output;
  EXPECT_NE(r.output.find("resuming from " + dir), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("linear/w"), std::string::npos) << r.output;
}

// Polls `log` every 5 ms until it holds `text`; false after `limit`.
bool WaitForLog(const std::string& log, const std::string& text, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (testing::ReadFile(log).find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    usleep(5000);
  }
  return true;
}

std::string ManifestName(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "snapshot-%012lld.manifest", static_cast<long long>(step));
  return name;
}

// A job that would train for minutes is stopped with `signal` once it
// trains; it must end at a step boundary with a final snapshot at its last
// global step and a summary that says it stopped, exiting 128 + signal.
void StopWithSignal(const std::string& name, const std::string& job_file, const std::vector<std::string>& flags,
                    int signal) {
  const std::string model_dir = TempPath(name + "_model");
  const std::string summary = TempPath(name + ".json");
  const std::string log = TempPath(name + ".log");
  std::vector<std::string> argv = {kCairn, "train", job_file, "--local", "--workers", "2", "--epochs", "1000",
                                   "--model-dir", model_dir, "--summary", summary};
  argv.insert(argv.end(), flags.begin(), flags.end());
  testing::ChildProcess job(argv, {}, log);
  ASSERT_TRUE(WaitForLog(log, "[chief] epoch", std::chrono::milliseconds(60000))) << testing::ReadFile(log);
  job.Signal(signal);
  ASSERT_TRUE(job.WaitExit(std::chrono::milliseconds(30000))) << "still running after the signal\n"
                                                              << testing::ReadFile(log);
  const std::string out = testing::ReadFile(log);
  EXPECT_EQ(job.exit_code(), 128 + signal) << job.how() << "\n" << out;
  EXPECT_NE(out.find("stop requested"), std::string::npos) << out;
  EXPECT_NE(out.find("worker 1: stopped on request after step"), std::string::npos) << out;
  ASSERT_TRUE(std::ifstream(summary).good()) << out;
  nlohmann::json s = ReadJson(summary);
  EXPECT_EQ(s["stopped"], true) << s.dump();
  const int64_t step = s["global_step"].get<int64_t>();
  EXPECT_GT(step, 0);
  EXPECT_LT(step, 2 * 1000 * 500) << "the job ran to its end";
  EXPECT_EQ(s["last_snapshot_step"], step) << s.dump();
  EXPECT_TRUE(std::ifstream(model_dir + "/" + ManifestName(step)).good()) << "no final snapshot " << step;
}

TEST(CairnCommand, ASigintStopsALocalJobAtAStepBoundaryWithAFinalSnapshotAndSummary) {
  StopWithSignal("sigint", kExample, {}, SIGINT);
}

// Sync rounds need every worker: both stop at the global step the chief
// picked, well before a round could wait out sync_timeout_ms.
TEST(CairnCommand, ASigtermStopsALocalSyncJobWithEveryWorkerAtOneStep) {
  std::string yaml = testing::ReadFile(kExample);
  const std::string timeout = "timeout_ms: 30000";
  yaml.replace(yaml.find(timeout), timeout.size(), "timeout_ms: 90000");  // must exceed sync_timeout_ms (60 s)
  const std::string job = TempPath("sigterm_sync.yaml");
  testing::WriteFile(job, yaml);
  StopWithSignal("sigterm_sync", job, {"--consistency", "sync"}, SIGTERM);
}

TEST(CairnCommand, ASecondSignalExitsAtOnce) {
  // A worker whose servers never come up waits for them (cluster.timeout_ms)
  // and cannot reach a step boundary: only the second signal ends it.
  const std::string cluster = TempPath("second_signal_cluster.yaml");
  std::ofstream(cluster) << "servers: [127.0.0.1:" << testing::FreePort() << "]\nworkers: 2\n"
                         << testing::SecretFileLine(kCairn, TempPath("second_signal.secret"));
  const std::string log = TempPath("second_signal.log");
  testing::ChildProcess worker({kCairn, "worker", "--cluster", cluster, "--index", "1", kExample}, {}, log);
  ASSERT_TRUE(WaitForLog(log, "worker 1 of 2", std::chrono::milliseconds(60000))) << testing::ReadFile(log);
  worker.Signal(SIGINT);
  ASSERT_TRUE(WaitForLog(log, "stop requested", std::chrono::milliseconds(10000))) << testing::ReadFile(log);
  EXPECT_TRUE(worker.running()) << worker.how();
  worker.Signal(SIGINT);
  ASSERT_TRUE(worker.WaitExit(std::chrono::milliseconds(10000))) << testing::ReadFile(log);
  EXPECT_EQ(worker.exit_code(), 130) << worker.how();
  EXPECT_NE(testing::ReadFile(log).find("a second stop signal: exiting at once"), std::string::npos)
      << testing::ReadFile(log);
}

TEST(CairnCommand, MissingDataFilesAreNamed) {
  const std::string job = TempPath("nodata.yaml");
  std::ofstream(job) << "model: {kind: mlp}\ndata: {kind: fashion_mnist, dir: /nonexistent/fmnist}\n";
  auto r = RunCommand({kCairn, "train", job, "--local"}, seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/fmnist/train-images-idx3-ubyte.gz"), std::string::npos) << r.output;
}

TEST(CairnCommand, MpirunWithTooFewRanksSaysHowManyAreNeeded) {
  auto r = RunCommand(Mpirun(2, {kCairn, "train", kExample, "--servers", "2"}), seconds(120));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("need at least 3"), std::string::npos) << r.output;
}

// Each server advertises its own entry: here the loopback interface's
// address for server 0 and a literal one for server 1.
TEST(CairnCommand, MpirunServersAdvertiseTheirOwnEntryOfTheList) {
  auto r = RunCommand(Mpirun(3, {kCairn, "train", kExample, "--servers", "2", "--max-steps", "20", "--bind", "0.0.0.0",
                                 "--advertise", "iface:lo,127.0.0.1"}),
                      seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("server 0 listening on 127.0.0.1:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("server 1 listening on 127.0.0.1:"), std::string::npos) << r.output;
  auto bad = RunCommand(Mpirun(3, {kCairn, "train", kExample, "--servers", "2", "--max-steps", "20", "--bind",
                                   "0.0.0.0", "--advertise", "iface:nosuch0,127.0.0.1"}),
                        seconds(120));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("interface 'nosuch0' has no IPv4 address"), std::string::npos) << bad.output;
}

TEST(CairnCommand, MpirunWithAWorkersFlagThatDisagreesWithTheRanksSaysSo) {
  auto r = RunCommand(Mpirun(3, {kCairn, "train", kExample, "--servers", "1", "--workers", "3"}), seconds(120));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--workers 3 disagrees with mpirun: 3 ranks with --servers 1 make 2 worker(s)"),
            std::string::npos)
      << r.output;
}

// A re-run of a job whose steps are all done says so, instead of a final
// loss of a run that trained nothing.
TEST(CairnCommand, ARerunOfAFinishedJobSaysThereIsNothingToTrain) {
  const std::string model_dir = TempPath("finished_model");
  std::vector<std::string> argv = {kCairn, "train", kExample, "--local", "--servers", "1", "--workers", "1",
                                   "--max-steps", "30", "--model-dir", model_dir};
  auto first = RunCommand(argv, seconds(120));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("data: generating synthetic_linear"), std::string::npos) << first.output;
  auto again = RunCommand(argv, seconds(120));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("done: already at global step 30 (snapshot 30): nothing to train"), std::string::npos)
      << again.output;
  EXPECT_EQ(again.output.find("final loss"), std::string::npos) << again.output;
}

TEST(CairnCommand, ABadJobFieldIsNamed) {
  const std::string job = TempPath("bad.yaml");
  std::ofstream(job) << "train:\n  batch_size: lots\n";
  auto r = RunCommand({kCairn, "train", job, "--local"}, seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("train.batch_size"), std::string::npos) << r.output;
}

TEST(CairnCommand, AMissingJobFileIsNamed) {
  auto r = RunCommand({kCairn, "train", "/nonexistent/job.yaml", "--local"}, seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/job.yaml"), std::string::npos) << r.output;
}

TEST(CairnCommand, AHugeBatchSizeIsAnErrorNotACrash) {
  const std::string job = TempPath("huge_batch.yaml");
  std::ofstream(job) << "train:\n  batch_size: 100000000\n";
  auto r = RunCommand({kCairn, "train", job, "--local"}, seconds(60));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("train.batch_size: at most 1048576"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("bad_alloc"), std::string::npos) << r.output;
}

TEST(CairnCommand, AnEmptyJobFileOrADirectoryIsAnErrorNamingIt) {
  const std::string empty = TempPath("empty.yaml");
  std::ofstream(empty).close();
  auto r = RunCommand({kCairn, "train", empty, "--local"}, seconds(30));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(empty + ": the job file is empty"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("done:"), std::string::npos) << r.output;
  const std::string dir = std::string(CAIRN_SOURCE_DIR) + "/launch/examples";
  r = RunCommand({kCairn, "train", dir, "--local"}, seconds(30));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("'" + dir + "' is a directory, not a job file"), std::string::npos) << r.output;
}

TEST(CairnCommand, ZeroThreadsANegativeSeedAndAZeroSplitThresholdAreErrors) {
  auto r = RunCommand({kCairn, "train", kExample, "--local", "--seed", "-1"}, seconds(30));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--seed"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("done:"), std::string::npos) << r.output;

  const std::string job = TempPath("split0.yaml");
  std::ofstream(job) << "cluster:\n  split_threshold_bytes: 0\n";
  r = RunCommand({kCairn, "train", job, "--local"}, seconds(30));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("cluster.split_threshold_bytes: must be >= 1"), std::string::npos) << r.output;

  const std::string cluster = TempPath("cluster.yaml");
  std::ofstream(cluster) << "servers: [127.0.0.1:" << testing::FreePort() << "]\nworkers: 1\n"
                         << testing::SecretFileLine(kCairn, TempPath("cluster.secret"));
  r = RunCommand({kCairn, "server", "--cluster", cluster, "--index", "0", "--io-threads", "0"}, seconds(30));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--io-threads"), std::string::npos) << r.output;
}

TEST(CairnCommand, AServerModelDirThatDoesNotExistIsAnError) {
  const std::string cluster = TempPath("cluster_md.yaml");
  std::ofstream(cluster) << "servers: [127.0.0.1:" << testing::FreePort() << "]\nworkers: 1\n"
                         << testing::SecretFileLine(kCairn, TempPath("cluster_md.secret"));
  const std::string missing = TempPath("no_such_model_dir");
  // Without the check the server would serve (empty) until the time limit.
  auto r = RunCommand({kCairn, "server", "--cluster", cluster, "--index", "0", "--model-dir", missing}, seconds(20));
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--model-dir '" + missing + "' does not exist"), std::string::npos) << r.output;
}

// --- The standalone job's secret -----------------------------------------------

TEST(CairnSecret, MakesAFileOnlyItsOwnerCanReadAndNeverOverwritesOne) {
  const std::string path = TempPath("made.secret");
  ::unlink(path.c_str());
  auto r = RunCommand({kCairn, "secret", "--out", path}, seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string first = testing::ReadFile(path);
  EXPECT_EQ(first.size(), 65u) << first;  // 64 hex digits and a newline
  r = RunCommand({kCairn, "secret", "--out", path}, seconds(30));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(testing::ReadFile(path), first);
  const std::string other = TempPath("made2.secret");
  ::unlink(other.c_str());
  ASSERT_EQ(RunCommand({kCairn, "secret", "--out", other}, seconds(30)).exit_code, 0);
  EXPECT_NE(testing::ReadFile(other), first);
}

// `--version` says which kernels run; `--cpu-level` lowers them, on any
// command, and is refused when unknown or past what the CPU supports.
TEST(CairnCpuLevel, VersionSaysWhichKernelsRunAndTheLevelCanBeLowered) {
  auto r = RunCommand({kCairn, "--version"}, seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("cairn 0."), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kernels: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(detected: "), std::string::npos) << r.output;

  r = RunCommand({kCairn, "--cpu-level", "baseline", "--version"}, seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("kernels: baseline (detected: "), std::string::npos) << r.output;

  r = RunCommand({kCairn, "--cpu-level", "sse9", "--version"}, seconds(30));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--cpu-level: unknown CPU level 'sse9'"), std::string::npos) << r.output;

  // After the subcommand too; the level is logged and lands in the summary.
  const std::string summary = TempPath("baseline_level.json");
  r = RunCommand({kCairn, "train", kExample, "--in-process", "--max-steps", "5", "--cpu-level", "baseline",
                  "--summary", summary},
                 seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("kernels: baseline (detected: "), std::string::npos) << r.output;
  EXPECT_EQ(ReadJson(summary)["cpu_level"], "baseline");
}

// What a standalone server refuses to start with, each named in its error.
TEST(CairnSecret, AStandaloneServerRefusesAMissingShortOrReadableSecret) {
  const std::string cluster = TempPath("secretless.yaml");
  std::ofstream(cluster) << "servers: [127.0.0.1:" << testing::FreePort() << "]\nworkers: 1\n";
  auto server = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {kCairn, "server", "--cluster", cluster, "--index", "0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv, seconds(20));
  };
  auto r = server({});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--insecure"), std::string::npos) << r.output;  // says how to run without one

  const std::string missing = TempPath("no_such.secret");
  r = server({"--secret-file", missing});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(missing), std::string::npos) << r.output;

  const std::string readable = TempPath("readable.secret");
  ASSERT_FALSE(testing::SecretFileLine(kCairn, readable).empty());
  ASSERT_EQ(::chmod(readable.c_str(), 0644), 0);
  r = server({"--secret-file", readable});
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("group or others may read or write it"), std::string::npos) << r.output;

  const std::string short_secret = TempPath("short.secret");
  ::unlink(short_secret.c_str());
  {
    const int fd = ::open(short_secret.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "0123456789abcdef\n", 17), 17);
    ::close(fd);
  }
  r = server({"--secret-file", short_secret});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("needs at least 32"), std::string::npos) << r.output;
}

TEST(CairnSecret, AnInsecureServerSaysSoAndAnAuthenticatedWorkerRefusesIt) {
  const std::string cluster = TempPath("insecure.yaml");
  std::ofstream(cluster) << "servers: [127.0.0.1:" << testing::FreePort() << "]\nworkers: 1\n";
  const std::string server_log = TempPath("insecure_server.log");
  testing::ChildProcess server({kCairn, "server", "--cluster", cluster, "--index", "0", "--insecure"}, {},
                               server_log);
  ASSERT_TRUE(WaitForLog(server_log, "listening on", std::chrono::milliseconds(30000)))
      << testing::ReadFile(server_log);
  EXPECT_NE(testing::ReadFile(server_log).find("without authentication"), std::string::npos)
      << testing::ReadFile(server_log);
  // A worker with a secret cannot prove anything to a server without one,
  // and a server that proves nothing could be anyone's: it does not train.
  const std::string secret = TempPath("insecure_worker.secret");
  ASSERT_FALSE(testing::SecretFileLine(kCairn, secret).empty());
  std::string yaml = testing::ReadFile(kExample);
  yaml.replace(yaml.find("\ncluster:\n"), 10, "\ncluster:\n  timeout_ms: 3000\n");
  const std::string job = TempPath("insecure_job.yaml");
  testing::WriteFile(job, yaml);
  auto r = RunCommand({kCairn, "worker", "--cluster", cluster, "--index", "0", job, "--secret-file", secret},
                      seconds(60));
  EXPECT_FALSE(r.timed_out) << r.output;
  EXPECT_NE(r.exit_code, 0) << r.output;
  server.Signal(SIGTERM);
  EXPECT_TRUE(server.WaitExit(std::chrono::milliseconds(10000)));
}

TEST(CairnCommand, ABadFlagIsRejected) {
  auto r = RunCommand({kCairn, "train", kExample, "--servers", "zero"}, seconds(30));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--servers"), std::string::npos) << r.output;
  auto r2 = RunCommand({kCairn, "train", kExample, "--local", "--workers", "0"}, seconds(30));
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_NE(r2.output.find("cluster.workers"), std::string::npos) << r2.output;
}

}  // namespace
}  // namespace cairn
