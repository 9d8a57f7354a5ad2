// Fault recovery of standalone processes: real `cairn server` and `cairn
// worker` processes on 127.0.0.1, one of them killed with SIGKILL while the
// job trains, and (where the job can go on) started again with the very
// same command.
//
//   1. Sync, a server killed and restarted: the restarted server restores
//      its shards from the newest committed snapshot, the chief rolls every
//      server back to it, every worker recovers and the job ends exactly as
//      an uninterrupted run of the same job does (final snapshot bit for
//      bit: variables, optimizer slots, global_step, data positions). Once
//      killed from outside between two snapshots, once dying (CAIRN_CRASH_AT)
//      inside a snapshot's prepare.
//   2. Async, a server killed and restarted: the job completes, and a worker
//      says how many global steps of updates the restarted server lost.
//   3. Sync, a worker killed: with missing_workers "fail" the other worker
//      fails within a bound naming it; with "continue" the other worker
//      finishes and the servers say they go on without it.
//   4. Async, a worker killed and restarted: the other worker keeps
//      training, and the restarted one resumes after its last pushed step.
//
// Each test bounds every wait, prints what it measured (recovery times),
// and keeps its logs and model directories (under the gtest temporary
// directory) when it fails, or always with CAIRN_KEEP_LOGS set.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_db.h"
#include "tests/snapshot_compare.h"
#include "tests/subprocess.h"
#include "tests/wait.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::ChildProcess;

const std::string kCairn = CAIRN_BINARY;

// The longest any one job (or any one wait) may take before the test calls
// it hung. A whole job takes a few seconds on 2 cores.
constexpr milliseconds kJobLimit(60000);

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

using testing::FreePort;
using testing::ReadFile;
using testing::SecretFileLine;
using testing::SnapshotDifferences;
using testing::WriteFile;

bool Contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

// The highest "global step N" the chief logged (-1: none yet).
int64_t LoggedGlobalStep(const std::string& log) {
  static const std::string kKey = "global step ";
  int64_t best = -1;
  for (size_t at = log.find(kKey); at != std::string::npos; at = log.find(kKey, at + 1)) {
    best = std::max<int64_t>(best, std::atoll(log.c_str() + at + kKey.size()));
  }
  return best;
}

// The last "global step N" the chief logged (-1: none yet).
int64_t LastLoggedGlobalStep(const std::string& log) {
  static const std::string kKey = "global step ";
  const size_t at = log.rfind(kKey);
  return at == std::string::npos ? -1 : std::atoll(log.c_str() + at + kKey.size());
}

int64_t LatestStep(const std::string& model_dir) {
  std::error_code ec;
  if (!fs::exists(model_dir, ec)) return -1;
  StatusOr<int64_t> latest = LatestCommittedStep(model_dir);
  return latest.ok() ? *latest : -1;
}

// The first match's group 1 of `re` in `text`, or "" if none.
std::string FirstMatch(const std::string& text, const std::string& re) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex(re)) && m.size() > 1) return m[1];
  return "";
}

// Two server processes and two worker processes of one job, each with its
// own log under `dir`, all reading one cluster file with two fixed ports,
// so that a process started again runs the very same command.
class StandaloneJob {
 public:
  // `model_dir` empty: no snapshots (and the servers restore nothing).
  StandaloneJob(const std::string& dir, const std::string& job_yaml, const std::string& model_dir)
      : dir_(dir), model_dir_(model_dir) {
    fs::create_directories(dir);
    cluster_ = dir + "/cluster.yaml";
    WriteFile(cluster_, "servers: [127.0.0.1:" + std::to_string(FreePort()) + ", 127.0.0.1:" +
                            std::to_string(FreePort()) + "]\nworkers: 2\n" + SecretFileLine(kCairn, dir + "/job.secret"));
    job_ = dir + "/job.yaml";
    WriteFile(job_, job_yaml);
    // Servers given --model-dir need the directory to exist (the chief would
    // create it, but the servers may start first).
    if (!model_dir.empty()) fs::create_directories(model_dir);
  }

  void StartAll() {
    for (int s = 0; s < 2; ++s) StartServer(s);
    for (int w = 0; w < 2; ++w) StartWorker(w);
  }

  // Each start of a process logs to its own file: "server1.log",
  // "server1.2.log" for the second start, and so on. `env` ("NAME=value",
  // or empty) is added to the server's environment.
  void StartServer(int s, const std::string& env = "") {
    std::vector<std::string> argv = {kCairn, "server", "--cluster", cluster_, "--index", std::to_string(s)};
    if (!model_dir_.empty()) {
      argv.push_back("--model-dir");
      argv.push_back(model_dir_);
    }
    Start("server" + std::to_string(s), argv, env.empty() ? std::vector<std::string>{} : std::vector<std::string>{env});
  }
  // `extra` arguments go after the job's; `cluster` (if not empty) replaces
  // the job's cluster file.
  void StartWorker(int w, const std::vector<std::string>& extra = {}, const std::string& cluster = "") {
    std::vector<std::string> argv = {kCairn, "worker", "--cluster", cluster.empty() ? cluster_ : cluster,
                                     "--index", std::to_string(w), job_};
    if (!model_dir_.empty()) {
      argv.push_back("--model-dir");
      argv.push_back(model_dir_);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    Start("worker" + std::to_string(w), argv);
  }

  // The latest start of `name` ("server1", "worker0", ...) and its log.
  ChildProcess& proc(const std::string& name) { return *procs_.at(name).back().process; }
  std::string Log(const std::string& name) { return ReadFile(procs_.at(name).back().log); }
  std::string ChiefLog() { return Log("worker0"); }
  std::string AllWorkerLogs() {
    std::string out;
    for (auto& [name, starts] : procs_) {
      if (name.rfind("worker", 0) == 0) {
        for (auto& s : starts) out += ReadFile(s.log);
      }
    }
    return out;
  }

  // Waits until both workers' latest processes have ended; false if they
  // did not within `limit`.
  bool WaitWorkers(milliseconds limit) {
    return WaitUntil([&] { return !proc("worker0").running() && !proc("worker1").running(); }, limit);
  }

  void KillAll() {
    for (auto& [name, starts] : procs_) {
      for (auto& s : starts) s.process->Kill();
    }
  }

  // Every process's state and log, for failure messages.
  std::string Dump() {
    std::string out;
    for (auto& [name, starts] : procs_) {
      for (size_t i = 0; i < starts.size(); ++i) {
        out += "---- " + name + " start " + std::to_string(i + 1) + " (" + starts[i].process->how() + ") " +
               starts[i].log + "\n";
        std::string log = ReadFile(starts[i].log);
        if (log.size() > 6000) log = "[...]\n" + log.substr(log.size() - 6000);
        out += log;
      }
    }
    return out;
  }

  const std::string& model_dir() const { return model_dir_; }
  const std::string& cluster_file() const { return cluster_; }

 private:
  struct Run {
    std::string log;
    std::unique_ptr<ChildProcess> process;
  };

  void Start(const std::string& name, const std::vector<std::string>& argv,
             const std::vector<std::string>& env = {}) {
    auto& starts = procs_[name];
    const std::string log =
        dir_ + "/" + name + (starts.empty() ? "" : "." + std::to_string(starts.size() + 1)) + ".log";
    starts.push_back(Run{log, std::make_unique<ChildProcess>(argv, env, log)});
  }

  const std::string dir_;
  const std::string model_dir_;
  std::string cluster_;
  std::string job_;
  std::map<std::string, std::vector<Run>> procs_;
};

// ---- Comparing final snapshots ----

// ---- Jobs ----

// Linear regression with Adam (per-element and per-shard scalar slots), the
// weights split by rows over both servers: 100 global steps per epoch with
// two workers.
std::string LinearAdamJob(const std::string& consistency, int epochs, const std::string& extra_cluster,
                          const std::string& snapshot) {
  return "name: standalone_recovery\n"
         "model: {kind: linear_regression}\n"
         "data: {kind: synthetic_linear, examples: 4000, features: 300, noise_stddev: 0.01, seed: 7}\n"
         "train: {batch_size: 20, epochs: " + std::to_string(epochs) + ", log_every_steps: 1, seed: 3}\n"
         "optimizer: {kind: adam, learning_rate: 0.01}\n"
         "cluster: {consistency: " + consistency + ", split_threshold_bytes: 512" + extra_cluster + "}\n" +
         snapshot;
}

class StandaloneRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "cairn_standalone_recovery_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    if (!HasFailure() && !std::getenv("CAIRN_KEEP_LOGS")) fs::remove_all(root_);
    else std::printf("logs and model directories kept in %s\n", root_.c_str());
  }
  std::string root_;
};

// ---- 0. Start-up ----

// The chief's restore fails (the snapshot is of a model with other shapes):
// the other worker, waiting for the chief, ends at once too, instead of
// waiting out its 300 s for a chief that will never be ready.
TEST_F(StandaloneRecoveryTest, ARestoreThatFailsOnTheChiefEndsTheOtherWorkerAtOnce) {
  const std::string model_dir = root_ + "/M";
  std::string saved = LinearAdamJob("async", 1, "", "");
  WriteFile(root_ + "/saved.yaml", saved);
  auto r = testing::RunCommand({kCairn, "train", root_ + "/saved.yaml", "--local", "--servers", "2", "--workers", "1",
                                "--max-steps", "5", "--model-dir", model_dir},
                               std::chrono::seconds(60));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string yaml = saved;
  yaml.replace(yaml.find("features: 300"), 13, "features: 200");
  StandaloneJob job(root_ + "/run", yaml, "");
  job.StartServer(0);
  job.StartServer(1);
  job.StartWorker(0, {"--model-dir", model_dir});
  job.StartWorker(1);
  ASSERT_TRUE(job.proc("worker0").WaitExit(kJobLimit)) << job.Dump();
  const auto chief_done = Clock::now();
  ASSERT_TRUE(job.proc("worker1").WaitExit(milliseconds(10000))) << "worker 1 still waits for a failed chief\n"
                                                                  << job.Dump();
  const double after = SecondsSince(chief_done);
  EXPECT_FALSE(job.proc("worker0").exited_ok()) << job.Dump();
  EXPECT_FALSE(job.proc("worker1").exited_ok()) << job.Dump();
  EXPECT_TRUE(Contains(job.ChiefLog(), "'linear/w': float32[200, 1] in this model vs float32[300, 1]"))
      << job.ChiefLog();
  EXPECT_TRUE(Contains(job.Log("worker1"), "the chief (worker 0) failed to start")) << job.Log("worker1");
  std::printf("chief restore failed: worker 1 ended %.3f s after the chief\n", after);
  job.KillAll();
}

// Worker 1 reads a cluster file that lists the servers in the other order,
// then one with another worker count: each time it stops at start-up with
// an error naming both views, instead of waiting for a chief it looks for on
// the wrong server.
TEST_F(StandaloneRecoveryTest, AWorkerWithADifferentClusterFileIsRefusedNamingBothViews) {
  StandaloneJob job(root_ + "/run", LinearAdamJob("async", 1, ", timeout_ms: 30000", ""), "");
  const std::string cluster = ReadFile(job.cluster_file());
  const std::regex kServers("servers: \\[(127\\.0\\.0\\.1:\\d+), (127\\.0\\.0\\.1:\\d+)\\]");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(cluster, m, kServers)) << cluster;
  const std::string a = m[1], b = m[2];
  const std::string secret = cluster.substr(cluster.find("secret_file:"));  // the same secret
  job.StartServer(0);
  job.StartServer(1);
  job.StartWorker(0);
  const std::string mine = "servers [" + a + ", " + b + "], 2 worker(s)";
  const std::vector<std::pair<std::string, std::string>> others = {
      {"servers: [" + b + ", " + a + "]\nworkers: 2\n" + secret, "servers [" + b + ", " + a + "], 2 worker(s)"},
      {"servers: [" + a + ", " + b + "]\nworkers: 3\n" + secret, "servers [" + a + ", " + b + "], 3 worker(s)"}};
  for (size_t i = 0; i < others.size(); ++i) {
    const std::string file = root_ + "/other" + std::to_string(i) + ".yaml";
    WriteFile(file, others[i].first);
    job.StartWorker(1, {}, file);
    ASSERT_TRUE(job.proc("worker1").WaitExit(milliseconds(20000))) << "worker 1 was not refused\n" << job.Dump();
    const std::string log = job.Log("worker1");
    EXPECT_FALSE(job.proc("worker1").exited_ok()) << log;
    EXPECT_TRUE(Contains(log, "worker 1's cluster file says " + others[i].second)) << log;
    EXPECT_TRUE(Contains(log, "'s says " + mine)) << log;
  }
  job.KillAll();
}

// Standalone servers keep a job's variables: a second job whose variables
// are declared otherwise is told so, and how to go on.
TEST_F(StandaloneRecoveryTest, ASecondJobOfOtherVariablesOnTheSameServersIsToldToRestartThem) {
  StandaloneJob job(root_ + "/run", LinearAdamJob("async", 1, ", timeout_ms: 30000", ""), "");
  job.StartAll();
  ASSERT_TRUE(job.WaitWorkers(milliseconds(120000))) << job.Dump();
  ASSERT_TRUE(job.proc("worker0").exited_ok()) << job.Dump();
  // The same servers, a model of 200 features instead of 300.
  WriteFile(root_ + "/run/job.yaml",
            "name: another\nmodel: {kind: linear_regression}\n"
            "data: {kind: synthetic_linear, examples: 1000, features: 200, seed: 7}\n"
            "train: {batch_size: 20, epochs: 1}\noptimizer: {kind: adam, learning_rate: 0.01}\n"
            "cluster: {split_threshold_bytes: 512, timeout_ms: 30000}\n");
  job.StartWorker(0);
  ASSERT_TRUE(job.proc("worker0").WaitExit(milliseconds(60000))) << job.Dump();
  EXPECT_FALSE(job.proc("worker0").exited_ok());
  const std::string log = job.ChiefLog();
  EXPECT_TRUE(Contains(log, "the servers hold variables of another job")) << log;
  EXPECT_TRUE(Contains(log, "restart them (`cairn server`)")) << log;
  job.KillAll();
}

// ---- 0b. The end of an async job ----

// The chief's own steps end long before worker 1's (worker 1 starts only
// once the chief is done): the chief waits for worker 1 to run its last
// step, and its final snapshot and summary hold both workers' steps.
TEST_F(StandaloneRecoveryTest, AsyncChiefWaitsForEveryWorkerBeforeItsFinalSnapshotAndSummary) {
  const int64_t kStepsPerWorker = 100;  // 4000 examples / (2 workers x batch 20)
  const std::string yaml = LinearAdamJob("async", 1, ", timeout_ms: 30000",
                                         "snapshot: {every_steps: 0, every_secs: 0}\n");
  StandaloneJob job(root_ + "/run", yaml, root_ + "/M");
  job.StartServer(0);
  job.StartServer(1);
  job.StartWorker(0);
  ASSERT_TRUE(WaitUntil(
      [&] { return Contains(job.ChiefLog(), "waiting for worker 1") || !job.proc("worker0").running(); }, kJobLimit))
      << job.Dump();
  ASSERT_TRUE(job.proc("worker0").running()) << "the chief ended without waiting for worker 1\n" << job.Dump();
  EXPECT_TRUE(Contains(job.ChiefLog(), "waiting for worker 1 (step 0 of 100)")) << job.ChiefLog();
  job.StartWorker(1);
  ASSERT_TRUE(job.WaitWorkers(kJobLimit)) << job.Dump();
  EXPECT_TRUE(job.proc("worker0").exited_ok()) << job.Dump();
  EXPECT_TRUE(job.proc("worker1").exited_ok()) << job.Dump();
  const std::string chief = job.ChiefLog();
  EXPECT_EQ(FirstMatch(chief, "done: global step (\\d+)"), std::to_string(2 * kStepsPerWorker)) << chief;
  ASSERT_EQ(LatestStep(job.model_dir()), 2 * kStepsPerWorker) << job.Dump();
  StatusOr<SnapshotManifest> m = ReadManifest(job.model_dir(), 2 * kStepsPerWorker);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->workers.size(), 2u);
  EXPECT_EQ(m->workers[0].steps, kStepsPerWorker);
  EXPECT_EQ(m->workers[1].steps, kStepsPerWorker);
  EXPECT_TRUE(Contains(job.Log("worker1"), "worker 1: epoch 1/1  step 100/100 (100%)")) << job.Log("worker1");
  EXPECT_TRUE(Contains(job.Log("worker1"), "worker 1: done: 100 steps")) << job.Log("worker1");
  job.KillAll();
}

// ---- 1. Sync: a server killed and restarted ----

// Runs the sync job uninterrupted into model directory A, then again into B
// with server 1 killed once and restarted with the same command, and checks
// the recovery and that both runs end with the same final snapshot.
//
// `crash_point` empty: the test kills server 1 with SIGKILL between two
// snapshots (while the workers train). Otherwise server 1 kills itself at
// that point (CAIRN_CRASH_AT, e.g. inside a snapshot's prepare) and the test
// restarts it as soon as it is gone.
void SyncServerRestart(const std::string& root, const std::string& crash_point) {
  const int64_t kTotalSteps = 300;  // 3 epochs of 100 global steps
  const int64_t kEvery = 5;
  // Every snapshot is kept, so that each can be checked at the end.
  const std::string yaml = LinearAdamJob("sync", 3, ", sync_timeout_ms: 10000, timeout_ms: 15000",
                                         "snapshot: {every_steps: 5, every_secs: 0, max_to_keep: 0}\n");

  // The uninterrupted run.
  const auto t0 = Clock::now();
  StandaloneJob ref(root + "/ref", yaml, root + "/A");
  ref.StartAll();
  ASSERT_TRUE(ref.WaitWorkers(kJobLimit)) << "the uninterrupted run did not end\n" << ref.Dump();
  ASSERT_TRUE(ref.proc("worker0").exited_ok() && ref.proc("worker1").exited_ok()) << ref.Dump();
  ref.KillAll();
  const double ref_seconds = SecondsSince(t0);
  ASSERT_EQ(LatestStep(root + "/A"), kTotalSteps) << ref.Dump();

  // The same job, server 1 killed once and started again.
  const auto t1 = Clock::now();
  StandaloneJob job(root + "/run", yaml, root + "/B");
  job.StartServer(0);
  job.StartServer(1, crash_point.empty() ? "" : "CAIRN_CRASH_AT=" + crash_point);
  job.StartWorker(0);
  job.StartWorker(1);
  int64_t committed = -1, at_kill = -1;
  if (crash_point.empty()) {
    // Once a snapshot is committed, and the chief is between two snapshots
    // (its last logged global step is 2 or 3 past a multiple of every_steps:
    // it has begun the snapshot before and will not begin the next for a
    // step or two). Polled every millisecond: a step takes about one.
    ASSERT_TRUE(WaitUntil(
        [&] {
          committed = LatestStep(job.model_dir());
          if (committed < 0) return false;
          at_kill = LastLoggedGlobalStep(job.ChiefLog());
          return at_kill >= committed + 2 && (at_kill % kEvery == 2 || at_kill % kEvery == 3);
        },
        kJobLimit, milliseconds(1)))
        << "no snapshot was committed\n" << job.Dump();
    ASSERT_TRUE(job.proc("server1").running()) << job.Dump();
    job.proc("server1").Kill();
  } else {
    ASSERT_TRUE(job.proc("server1").WaitExit(kJobLimit)) << crash_point << " was never reached\n" << job.Dump();
    ASSERT_TRUE(job.proc("server1").killed_by_sigkill()) << job.proc("server1").how() << "\n" << job.Dump();
    committed = LatestStep(job.model_dir());
    at_kill = LastLoggedGlobalStep(job.ChiefLog());
  }
  ASSERT_LT(at_kill, kTotalSteps - 20) << "the job ran too fast to be interrupted mid-run";
  const auto killed = Clock::now();
  job.StartServer(1);
  const auto restarted = Clock::now();

  // Recovery, as the workers log it.
  double listening = -1, first_recovered = -1, all_recovered = -1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        if (listening < 0 && Contains(job.Log("server1"), "listening on")) listening = SecondsSince(killed);
        const bool r0 = Contains(job.Log("worker0"), "recovered in");
        const bool r1 = Contains(job.Log("worker1"), "recovered in");
        if (first_recovered < 0 && (r0 || r1)) first_recovered = SecondsSince(killed);
        if (r0 && r1) all_recovered = SecondsSince(killed);
        return (r0 && r1) || (!job.proc("worker0").running() && !job.proc("worker1").running());
      },
      kJobLimit))
      << "the workers never recovered\n" << job.Dump();
  ASSERT_TRUE(job.WaitWorkers(kJobLimit)) << "the job did not end after the restart\n" << job.Dump();
  const double run_seconds = SecondsSince(t1);
  EXPECT_TRUE(job.proc("worker0").exited_ok()) << "the chief " << job.proc("worker0").how();
  EXPECT_TRUE(job.proc("worker1").exited_ok()) << "worker 1 " << job.proc("worker1").how();
  EXPECT_TRUE(job.proc("server1").running()) << "the restarted server " << job.proc("server1").how();
  job.KillAll();
  if (::testing::Test::HasFailure()) std::printf("%s", job.Dump().c_str());

  const std::string chief = job.Log("worker0"), worker1 = job.Log("worker1"), server1 = job.Log("server1");
  // The workers lost server 1 and waited for it.
  for (const std::string* log : {&chief, &worker1}) {
    EXPECT_TRUE(Contains(*log, "lost the connection to server 1")) << *log;
    EXPECT_TRUE(Contains(*log, "reconnected to server 1")) << *log;
  }
  // The restarted server restored the newest committed snapshot before
  // serving, and the chief rolled the cluster back to a snapshot.
  const std::string restored = FirstMatch(server1, "restored \\d+ shard\\(s\\).* from snapshot (\\d+) in ");
  EXPECT_FALSE(restored.empty()) << server1;
  const std::string rolled = FirstMatch(chief, "rolled every server back from global step \\d+ to snapshot (\\d+)");
  EXPECT_FALSE(rolled.empty()) << chief;
  EXPECT_GE(std::atoll(restored.c_str()), committed) << "the restarted server restored an older snapshot";
  EXPECT_TRUE(Contains(chief, "server 1 restarted from snapshot " + restored)) << chief;
  const std::string secs0 = FirstMatch(chief, "worker 0: recovered in ([0-9.]+) s from snapshot " + rolled);
  const std::string secs1 = FirstMatch(worker1, "worker 1: recovered in ([0-9.]+) s from snapshot " + rolled);
  EXPECT_FALSE(secs0.empty()) << chief;
  EXPECT_FALSE(secs1.empty()) << worker1;
  EXPECT_FALSE(Contains(chief + worker1, "with no snapshot to restore from")) << chief << worker1;
  // Every snapshot is one global step in sync mode; a snapshot that mixes
  // shards of different steps must never be committed.
  StatusOr<std::vector<SnapshotListing>> listing = ListSnapshots(root + "/B");
  ASSERT_TRUE(listing.ok()) << listing.status().ToString();
  for (const SnapshotListing& l : *listing) {
    if (!l.committed) continue;
    StatusOr<SnapshotManifest> m = ReadManifest(root + "/B", l.step);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ(m->global_step, m->step) << "snapshot " << l.step << " holds global step " << m->global_step;
  }

  // The final snapshot equals the uninterrupted run's, bit for bit.
  ASSERT_EQ(LatestStep(root + "/B"), kTotalSteps);
  int parts = 0;
  const std::vector<std::string> diffs = SnapshotDifferences(root + "/A", root + "/B", kTotalSteps, &parts);
  for (const std::string& d : diffs) ADD_FAILURE() << "final snapshot " << kTotalSteps << ": " << d;
  EXPECT_GE(parts, 8) << "too few parts compared";

  const std::string how = crash_point.empty() ? "killed" : "crashed at " + crash_point;
  std::printf("sync, server 1 %s at global step %lld (snapshot %lld committed), restarted %.3f s later; "
              "restored snapshot %s, listening %.3f s after the kill; chief rolled back to snapshot %s\n",
              how.c_str(), static_cast<long long>(at_kill), static_cast<long long>(committed),
              std::chrono::duration<double>(restarted - killed).count(), restored.c_str(), listening, rolled.c_str());
  std::printf("sync: time to recover from the kill: first worker %.3f s, both workers %.3f s (the workers log %s s "
              "and %s s from their aborted step)\n",
              first_recovered, all_recovered, secs0.c_str(), secs1.c_str());
  std::printf("sync: uninterrupted run %.2f s, interrupted run %.2f s; final snapshot %lld: %zu difference(s) in %d "
              "parts\n",
              ref_seconds, run_seconds, static_cast<long long>(kTotalSteps), diffs.size(), parts);
}

TEST_F(StandaloneRecoveryTest, SyncServerKilledAndRestartedEndsBitIdenticalToUninterruptedRun) {
  SyncServerRestart(root_, "");
}

// Server 1 dies inside the second snapshot's prepare, after copying its
// shards and before answering: the chief's prepare must not be carried over
// to the restarted server (which holds the older snapshot's state), or the
// snapshot would commit server 0's shards of one step with server 1's of
// another, and the rollback would restore that mix.
TEST_F(StandaloneRecoveryTest, SyncServerKilledInsideASnapshotPrepareEndsBitIdenticalToUninterruptedRun) {
  SyncServerRestart(root_, "server.after_copy:2");
}

// ---- 2. Async: a server killed and restarted ----

TEST_F(StandaloneRecoveryTest, AsyncServerKilledAndRestartedJobCompletesAndSaysWhatWasLost) {
  const std::string yaml = LinearAdamJob("async", 3, ", timeout_ms: 30000",
                                         "snapshot: {every_steps: 5, every_secs: 0, max_to_keep: 3}\n");
  StandaloneJob job(root_ + "/run", yaml, root_ + "/M");
  const auto t0 = Clock::now();
  job.StartAll();
  int64_t committed = -1, at_kill = -1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        committed = LatestStep(job.model_dir());
        at_kill = LoggedGlobalStep(job.ChiefLog());
        return committed >= 0 && at_kill >= committed + 3;
      },
      kJobLimit))
      << "no snapshot was committed\n" << job.Dump();
  ASSERT_TRUE(job.proc("server1").running()) << job.Dump();
  job.proc("server1").Kill();
  const auto killed = Clock::now();
  // Down long enough for the workers to say they are still waiting (they
  // do 5 s after the connection was lost), as a crashed server would be
  // until a supervisor restarts it.
  ASSERT_TRUE(WaitUntil([&] { return Contains(job.AllWorkerLogs(), "still waiting for server 1"); },
                          milliseconds(10000)))
      << "no worker said it was still waiting for server 1\n" << job.Dump();
  const double waited = SecondsSince(killed);
  job.StartServer(1);
  const auto restarted = Clock::now();
  double noticed = -1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        if (noticed < 0 && Contains(job.AllWorkerLogs(), "its shards lost the updates")) noticed = SecondsSince(killed);
        return !job.proc("worker0").running() && !job.proc("worker1").running();
      },
      kJobLimit))
      << "the job did not end after the restart\n" << job.Dump();
  const double run_seconds = SecondsSince(t0);
  EXPECT_TRUE(job.proc("worker0").exited_ok()) << "the chief " << job.proc("worker0").how() << "\n" << job.Dump();
  EXPECT_TRUE(job.proc("worker1").exited_ok()) << "worker 1 " << job.proc("worker1").how() << "\n" << job.Dump();
  EXPECT_TRUE(job.proc("server0").running() && job.proc("server1").running());
  job.KillAll();
  if (HasFailure()) return;

  const std::string workers = job.AllWorkerLogs(), server1 = job.Log("server1");
  const std::string restored = FirstMatch(server1, "restored \\d+ shard\\(s\\).* from snapshot (\\d+) in ");
  ASSERT_FALSE(restored.empty()) << server1;
  const std::string lost = FirstMatch(workers, "server 1 restarted from snapshot " + restored +
                                                   ": its shards lost the updates of about (\\d+) global step");
  ASSERT_FALSE(lost.empty()) << workers;
  // Counted from the highest step the worker saw before the restart, not
  // from the restored global_step it pulled after it.
  EXPECT_GT(std::stoll(lost), 0) << workers;
  EXPECT_TRUE(Contains(workers, "lost the connection to server 1")) << workers;
  EXPECT_TRUE(Contains(workers, "reconnected to server 1")) << workers;
  std::printf("async: server 1 killed at global step %lld; a worker said it was still waiting for it %.3f s later; "
              "restarted %.3f s after the kill from snapshot %s\n",
              static_cast<long long>(at_kill), waited, std::chrono::duration<double>(restarted - killed).count(),
              restored.c_str());
  std::printf("async: a worker said the restarted server lost the last %s global step(s), %.3f s after the restart; "
              "reconnected: %s; job done in %.2f s\n",
              lost.c_str(), noticed - std::chrono::duration<double>(restarted - killed).count(),
              FirstMatch(workers, "(reconnected to server 1 [^\\n]*)").c_str(), run_seconds);
}

// ---- 3. Sync: a worker killed ----

// Kills worker 1 once the chief has trained `at` global steps; returns the
// kill time.
// From the chief's last progress line ("step X/Y ... global step G"): the
// steps the other workers have had applied, G - X (async counts every push).
int64_t OtherWorkersSteps(const std::string& chief_log) {
  static const std::regex kLine("step (\\d+)/\\d+ .*global step (\\d+)");
  int64_t others = 0;
  for (auto it = std::sregex_iterator(chief_log.begin(), chief_log.end(), kLine); it != std::sregex_iterator(); ++it) {
    others = std::stoll((*it)[2].str()) - std::stoll((*it)[1].str());
  }
  return others;
}

// Kills worker 1 once the chief logged global step `at` (in sync mode every
// step has worker 1's push) and, in async mode, worker 1 has steps of its
// own applied (a worker slow to start could otherwise die before its first
// step, with no position to resume from).
Clock::time_point KillWorker1At(StandaloneJob& job, int64_t at, bool async = false) {
  EXPECT_TRUE(WaitUntil(
      [&] {
        const std::string log = job.ChiefLog();
        return (LoggedGlobalStep(log) >= at && (!async || OtherWorkersSteps(log) >= 5)) ||
               !job.proc("worker1").running();
      },
      kJobLimit))
      << job.Dump();
  EXPECT_TRUE(job.proc("worker1").running()) << "worker 1 ended before its kill: " << job.proc("worker1").how();
  job.proc("worker1").Kill();
  return Clock::now();
}

TEST_F(StandaloneRecoveryTest, SyncWorkerKilledFailsTheJobNamingIt) {
  const int64_t kSyncTimeoutMs = 2000;
  const std::string yaml =
      LinearAdamJob("sync", 3, ", sync_timeout_ms: 2000, timeout_ms: 10000, missing_workers: fail", "");
  StandaloneJob job(root_ + "/run", yaml, "");
  job.StartAll();
  const auto killed = KillWorker1At(job, 30);
  ASSERT_FALSE(HasFailure());
  // Worker 0 waits sync_timeout_ms for worker 1's push, then fails.
  const milliseconds bound(kSyncTimeoutMs + 5000);
  ASSERT_TRUE(job.proc("worker0").WaitExit(bound)) << "the chief still runs " << bound.count() << " ms after worker "
                                                   << "1 died\n" << job.Dump();
  const double took = SecondsSince(killed);
  const std::string chief = job.Log("worker0");
  EXPECT_FALSE(job.proc("worker0").exited_ok()) << job.proc("worker0").how() << "\n" << chief;
  EXPECT_TRUE(std::regex_search(chief, std::regex("\\[error\\].*worker\\(s\\) 1 did not push within 2000 ms")))
      << chief;
  EXPECT_GE(took, kSyncTimeoutMs / 1000.0 - 0.2) << "failed before the sync timeout";
  std::printf("sync, missing_workers fail: the chief %s %.3f s after worker 1 was killed: %s\n",
              job.proc("worker0").how().c_str(), took,
              FirstMatch(chief, "\\[error\\] (.*did not push[^\\n]*)").c_str());
  job.KillAll();
}

TEST_F(StandaloneRecoveryTest, SyncWorkerKilledWithContinueFinishesWithoutIt) {
  const std::string yaml =
      LinearAdamJob("sync", 2, ", sync_timeout_ms: 2000, timeout_ms: 10000, missing_workers: continue", "");
  StandaloneJob job(root_ + "/run", yaml, "");
  job.StartAll();
  const auto killed = KillWorker1At(job, 30);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(job.proc("worker0").WaitExit(kJobLimit)) << job.Dump();
  const double took = SecondsSince(killed);
  const std::string chief = job.Log("worker0");
  EXPECT_TRUE(job.proc("worker0").exited_ok()) << job.proc("worker0").how() << "\n" << job.Dump();
  EXPECT_TRUE(Contains(chief, "done: global step")) << chief;
  const std::string servers = job.Log("server0") + job.Log("server1");
  const std::regex kContinue("worker\\(s\\) 1 did not push within 2000 ms; continuing without them with 1 worker");
  EXPECT_TRUE(std::regex_search(servers, kContinue)) << servers;
  EXPECT_TRUE(job.proc("server0").running() && job.proc("server1").running());
  std::printf("sync, missing_workers continue: the chief finished %.3f s after worker 1 was killed (%s)\n", took,
              FirstMatch(chief, "(done: global step \\d+)").c_str());
  job.KillAll();
}

// ---- 4. Async: a worker killed and restarted ----

TEST_F(StandaloneRecoveryTest, AsyncWorkerKilledAndRestartedResumesAfterItsLastStep) {
  // 2000 steps per worker: worker 0 is still training when worker 1 is back.
  const std::string yaml = LinearAdamJob("async", 20, ", timeout_ms: 30000", "");
  StandaloneJob job(root_ + "/run", yaml, "");
  job.StartAll();
  const auto killed = KillWorker1At(job, 100, /*async=*/true);
  ASSERT_FALSE(HasFailure());
  const int64_t at_kill = LoggedGlobalStep(job.ChiefLog());
  // Worker 0 trains on alone.
  int64_t alone = -1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        alone = LoggedGlobalStep(job.ChiefLog());
        return alone >= at_kill + 200 || !job.proc("worker0").running();
      },
      kJobLimit))
      << job.Dump();
  EXPECT_GE(alone, at_kill + 200) << "worker 0 did not train on without worker 1\n" << job.Dump();
  EXPECT_TRUE(job.proc("worker0").running()) << "worker 0 ended before worker 1 was back: "
                                             << job.proc("worker0").how();
  const double down = SecondsSince(killed);
  job.StartWorker(1);
  ASSERT_TRUE(job.WaitWorkers(kJobLimit)) << "the job did not end after worker 1 was restarted\n" << job.Dump();
  EXPECT_TRUE(job.proc("worker0").exited_ok()) << "the chief " << job.proc("worker0").how() << "\n" << job.Dump();
  EXPECT_TRUE(job.proc("worker1").exited_ok()) << "worker 1 " << job.proc("worker1").how() << "\n" << job.Dump();
  const std::string restarted = job.Log("worker1");
  const std::string after = FirstMatch(restarted, "worker 1: resuming after step (\\d+) ");
  EXPECT_FALSE(after.empty()) << restarted;
  EXPECT_GT(std::atoll(after.c_str()), 0);
  std::printf("async: worker 1 killed at global step %lld; worker 0 trained on alone to global step %lld in %.3f s; "
              "restarted worker 1 resumed after step %s; both finished\n",
              static_cast<long long>(at_kill), static_cast<long long>(alone), down, after.c_str());
  job.KillAll();
}

}  // namespace
}  // namespace cairn
