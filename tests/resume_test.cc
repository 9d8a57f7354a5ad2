// Exact resume with real processes: a sync job with fixed seeds (dense, or
// wide & deep with a sparse table), killed with SIGKILL (one process, at a
// random moment) and re-run with the same command until a run completes,
// ends with the same global step, weights, sparse rows and optimizer
// slots, bit for bit, as an uninterrupted run of the same job -- also when
// each re-run has another number of servers.
//
// Each test runs the job once uninterrupted (model directory A), then again
// in model directory B, killing one process of each attempt: under mpirun
// one rank (mpirun then takes the whole job down), in standalone mode one of
// the `cairn server` / `cairn worker` processes (the test then kills the
// rest, and re-runs all of them). A kill lands at a random time during
// start-up, when the chief logs a random global step, or at a random time
// into training (ChooseKill), so kills hit start-up, restore, training,
// snapshots and the end of the job. After CAIRN_RESUME_KILLS kills
// (default 3; 50 makes a soak of a few minutes) one last attempt runs to
// completion. Every attempt
// that starts after a snapshot was committed must say it resumes from that
// snapshot, and every snapshot step B and A both hold must be identical:
// manifest (step, global step, each worker's data position), every
// variable and slot as the snapshot tools read it, and every shard part of
// every server's database.
//
// CAIRN_RESUME_SEED fixes the kills' random choices (default fixed; the
// kill instants still depend on process timing).
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
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
#include <optional>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "launch/snapshot_tools.h"
#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_db.h"
#include "tests/snapshot_compare.h"
#include "tests/subprocess.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;
using testing::ChildProcess;
using testing::FreePort;
using testing::SecretFileLine;

const std::string kCairn = CAIRN_BINARY;

// How long one attempt may take before the test calls it hung.
constexpr milliseconds kAttemptLimit(180000);
// How long mpirun (or the test, in standalone mode) may take to bring the
// rest of a job down after one process was killed.
constexpr milliseconds kTakeDownLimit(60000);
// How long mpirun may take to exit once every rank has died.
constexpr milliseconds kMpirunExitLimit(15000);

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

template <typename... Args>
std::string Format(const char* format, Args... args) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), format, args...);
  return buf;
}

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int64_t LatestStep(const std::string& model_dir) {
  if (!fs::exists(model_dir)) return -1;
  StatusOr<int64_t> latest = LatestCommittedStep(model_dir);
  return latest.ok() ? *latest : -1;
}

// The highest "global step N" in `log` from `*scanned` on (-1: none), and
// advances `*scanned` past the last whole line: the chief logs every step,
// and the log is read again every few milliseconds.
int64_t LoggedGlobalStep(const std::string& log, size_t* scanned) {
  static const std::string kKey = "global step ";
  const size_t end = log.rfind('\n');
  if (end == std::string::npos || end < *scanned) return -1;
  int64_t best = -1;
  for (size_t at = log.find(kKey, *scanned); at != std::string::npos && at < end; at = log.find(kKey, at + 1)) {
    best = std::max<int64_t>(best, std::atoll(log.c_str() + at + kKey.size()));
  }
  *scanned = end;
  return best;
}

// The steps the chief said it resumed from, in order.
std::vector<int64_t> ResumedSteps(const std::string& log) {
  static const std::regex kResumed("resuming from snapshot (\\d+) ");
  std::vector<int64_t> steps;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), kResumed); it != std::sregex_iterator(); ++it) {
    steps.push_back(std::stoll((*it)[1]));
  }
  return steps;
}

// ---- Processes, from /proc ----

struct ProcInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  std::string comm;
  std::string cmdline;  // arguments joined by spaces
};

std::vector<ProcInfo> AllProcesses() {
  std::vector<ProcInfo> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    const std::string stat = ReadFile("/proc/" + std::string(e->d_name) + "/stat");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 4 > stat.size()) continue;
    ProcInfo p;
    p.pid = pid;
    p.comm = stat.substr(open + 1, close - open - 1);
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    rest >> state >> p.ppid;
    p.cmdline = ReadFile("/proc/" + std::string(e->d_name) + "/cmdline");
    std::replace(p.cmdline.begin(), p.cmdline.end(), '\0', ' ');
    out.push_back(std::move(p));
  }
  closedir(d);
  return out;
}

// Live `cairn` processes whose command line holds `marker` (a path unique
// to one test's job; a zombie's command line is empty, so the dead that
// are not reaped yet do not count). With `children_of_mpirun`, only those whose parent is
// not `cairn` and whose command line holds it too: the ranks of that one
// mpirun.
std::vector<pid_t> CairnProcesses(const std::string& marker, bool children_of_mpirun) {
  const std::vector<ProcInfo> all = AllProcesses();
  std::map<pid_t, const ProcInfo*> by_pid;
  for (const ProcInfo& p : all) by_pid[p.pid] = &p;
  std::vector<pid_t> out;
  for (const ProcInfo& p : all) {
    if (p.comm != "cairn" || p.cmdline.find(marker) == std::string::npos) continue;
    if (children_of_mpirun) {
      auto parent = by_pid.find(p.ppid);
      if (parent == by_pid.end() || parent->second->comm == "cairn" ||
          parent->second->cmdline.find(marker) == std::string::npos) {
        continue;
      }
    }
    out.push_back(p.pid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// An mpirun rank's number, from its environment (-1 if unknown).
int RankOf(pid_t pid) {
  const std::string env = ReadFile("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = std::string(1, '\0') + "OMPI_COMM_WORLD_RANK=";
  const size_t at = env.find(key);
  return at == std::string::npos ? -1 : std::atoi(env.c_str() + at + key.size());
}

// Waits until no process of the job is left; true if none is.
bool NoProcessesLeft(const std::string& marker, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!CairnProcesses(marker, false).empty()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

// ---- Jobs and their attempts ----

struct ResumeJob {
  std::string name;
  std::string yaml;       // snapshot.model_dir left out: the command line gives it
  int64_t total_steps;    // global steps of a complete run
};

// Linear regression with Adam (per-element and per-shard scalar slots), the
// weights split by rows over both servers.
ResumeJob LinearAdamJob() {
  return {"linear_adam",
          "name: resume_linear_adam\n"
          "model: {kind: linear_regression}\n"
          "data: {kind: synthetic_linear, examples: 4000, features: 300, noise_stddev: 0.01, seed: 7}\n"
          "train: {batch_size: 20, epochs: 3, log_every_steps: 1, seed: 3}\n"
          "optimizer: {kind: adam, learning_rate: 0.01}\n"
          "cluster: {servers: 2, workers: 2, consistency: sync, sync_timeout_ms: 20000, timeout_ms: 30000,\n"
          "          split_threshold_bytes: 512}\n"
          "snapshot: {every_steps: 5, every_secs: 0, max_to_keep: 0}\n",
          3 * 4000 / (2 * 20)};
}

// An MLP with momentum on a Fashion-MNIST subset: non-trainable variables
// the chief computes (normalization statistics), a learning rate the chief
// assigns on an exponential schedule before every step, and an epoch-end
// evaluation by the chief.
ResumeJob MlpMomentumJob() {
  return {"mlp_momentum",
          "name: resume_mlp_momentum\n"
          "model: {kind: mlp, hidden: [32], activation: relu, seed: 2}\n"
          "data: {kind: fashion_mnist, dir: /usr/share/datasets/fashion-mnist, train_limit: 2000, test_limit: 500}\n"
          "train: {batch_size: 50, epochs: 10, log_every_steps: 1, seed: 5}\n"
          "optimizer: {kind: momentum, learning_rate: 0.05, momentum: 0.9, schedule: exponential,\n"
          "            decay_rate: 0.5, decay_steps: 60}\n"
          "cluster: {servers: 2, workers: 2, consistency: sync, sync_timeout_ms: 20000, timeout_ms: 30000,\n"
          "          split_threshold_bytes: 4096}\n"
          "snapshot: {every_steps: 5, every_secs: 0, max_to_keep: 0}\n",
          10 * 2000 / (2 * 50)};
}

// Wide & deep on a small synthetic click log: one sparse table (rows
// created on first touch, Adagrad accumulators) beside the dense MLP and
// wide weights, the dense ones split by rows over the servers.
ResumeJob WideDeepAdagradJob() {
  return {"wide_deep_adagrad",
          "name: resume_wide_deep\n"
          "model: {kind: click_wide_deep, embedding_dim: 8, hidden: [16], seed: 2}\n"
          "data: {kind: synthetic_clicks, seed: 3, rows: 8000, test_rows: 1000, vocab_max: 5000}\n"
          "train: {batch_size: 50, epochs: 2, log_every_steps: 1, seed: 5}\n"
          "optimizer: {kind: adagrad, learning_rate: 0.05}\n"
          "cluster: {servers: 2, workers: 2, consistency: sync, sync_timeout_ms: 20000, timeout_ms: 30000,\n"
          "          split_threshold_bytes: 512}\n"
          "snapshot: {every_steps: 5, every_secs: 0, max_to_keep: 0}\n",
          2 * 8000 / (2 * 50)};
}

// A model described as a layer list with batch normalization and dropout
// on a Fashion-MNIST subset: moving statistics (non-trainable, moved by
// every worker's AssignAdd in the step's own push) and dropout masks drawn
// from (seed, worker, step) must resume exactly too.
ResumeJob BatchNormJob() {
  return {"batch_norm",
          "name: resume_batch_norm\n"
          "model:\n"
          "  kind: layers\n"
          "  seed: 4\n"
          "  layers:\n"
          "    - {type: normalize}\n"
          "    - {type: dense, units: 32, activation: relu}\n"
          "    - {type: batch_norm, name: bn, momentum: 0.9}\n"
          "    - {type: dropout, rate: 0.2}\n"
          "    - {type: dense, units: 10}\n"
          "    - {type: softmax}\n"
          "data: {kind: fashion_mnist, dir: /usr/share/datasets/fashion-mnist, train_limit: 2000, test_limit: 500}\n"
          "train: {batch_size: 50, epochs: 6, log_every_steps: 1, seed: 5}\n"
          "optimizer: {kind: adam, learning_rate: 0.005}\n"
          "cluster: {servers: 2, workers: 2, consistency: sync, sync_timeout_ms: 20000, timeout_ms: 30000,\n"
          "          split_threshold_bytes: 4096}\n"
          "snapshot: {every_steps: 5, every_secs: 0, max_to_keep: 0}\n",
          6 * 2000 / (2 * 50)};
}

// Every process of one attempt at running the job.
class Attempt {
 public:
  virtual ~Attempt() = default;
  // The attempt is over: every process that ends by itself has ended.
  virtual bool Done() = 0;
  // Every process that ends by itself exited 0.
  virtual bool Succeeded() = 0;
  // SIGKILLs one process chosen with `rng`; says which ("" if none was
  // running any more).
  virtual std::string KillOne(std::mt19937& rng) = 0;
  // After KillOne: waits for (mpirun) or makes (standalone) the rest of the
  // job go down; false if it did not within the limit.
  virtual bool TakeDown(std::mt19937& rng) = 0;
  // Ends what is left of an attempt that ended by itself (standalone: the
  // servers, which serve until killed).
  virtual void Stop() = 0;
  // Anything unusual about how the attempt went down, for the report.
  virtual std::string Remark() { return ""; }
  // What the chief logged (under mpirun, every rank's output).
  virtual std::string ChiefLog() = 0;
  virtual std::string AllLogs() = 0;
  virtual std::string How() = 0;
};

// `mpirun -np S+2 cairn train JOB --servers S --model-dir DIR`: ranks
// 0..S-1 serve, S (the chief) and S+1 train.
class MpirunAttempt : public Attempt {
 public:
  MpirunAttempt(const std::string& job, const std::string& model_dir, const std::string& log, int servers = 2)
      : model_dir_(model_dir), log_(log), servers_(servers),
        mpirun_({CAIRN_MPIEXEC, "-np", std::to_string(servers + 2), "--oversubscribe", "--mca", "btl", "self,tcp",
                 kCairn, "train", job, "--servers", std::to_string(servers), "--model-dir", model_dir},
                {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"}, log) {}

  bool Done() override { return !mpirun_.running(); }
  bool Succeeded() override { return mpirun_.exited_ok(); }

  std::string KillOne(std::mt19937& rng) override {
    // The ranks may not all be forked yet: wait for them, briefly.
    const auto deadline = Clock::now() + seconds(20);
    std::vector<pid_t> ranks;
    while (mpirun_.running() && Clock::now() < deadline) {
      ranks = CairnProcesses(model_dir_, /*children_of_mpirun=*/true);
      if (static_cast<int>(ranks.size()) == servers_ + 2) break;
      std::this_thread::sleep_for(milliseconds(2));
    }
    if (ranks.empty() || !mpirun_.running()) return "";
    const pid_t victim = ranks[rng() % ranks.size()];
    const int rank = RankOf(victim);
    if (kill(victim, SIGKILL) != 0) return "";
    const char* role = rank < 0 ? "?" : rank < servers_ ? "server" : rank == servers_ ? "chief" : "worker";
    return "rank " + std::to_string(rank) + " (" + role + ", pid " + std::to_string(victim) + ")";
  }

  // Open MPI 4.1's mpirun sometimes hangs (or crashes) when a rank dies
  // during MPI start-up: every rank is dead, mpirun prints "noticed that
  // process rank N with PID 0 ... exited on signal 9", and never exits. The
  // job did go down, which is all Cairn controls: such an mpirun is killed
  // and counted (mpirun_hangs()), not failed. Ranks still alive at the
  // limit are a failure.
  bool TakeDown(std::mt19937&) override {
    const auto deadline = Clock::now() + kTakeDownLimit;
    std::optional<Clock::time_point> ranks_gone;
    while (mpirun_.running()) {
      if (!CairnProcesses(model_dir_, /*children_of_mpirun=*/true).empty()) {
        ranks_gone.reset();
      } else if (!ranks_gone) {
        ranks_gone = Clock::now();
      } else if (Clock::now() - *ranks_gone > kMpirunExitLimit) {
        mpirun_.Kill();
        ++mpirun_hangs_;
        break;
      }
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
    return NoProcessesLeft(model_dir_, seconds(10));
  }
  std::string Remark() override {
    return mpirun_hangs_ ? "; mpirun hung after every rank had died, and was killed" : "";
  }

  void Stop() override { mpirun_.Kill(); }

  std::string ChiefLog() override { return ReadFile(log_); }
  std::string AllLogs() override { return ReadFile(log_); }
  std::string How() override { return "mpirun (" + std::to_string(servers_) + " servers) " + mpirun_.how(); }

 private:
  const std::string model_dir_;
  const std::string log_;
  const int servers_;
  ChildProcess mpirun_;
  int mpirun_hangs_ = 0;
};

// Standalone processes: `cairn server --cluster F --index 0|1` and
// `cairn worker --cluster F --index 0|1 JOB --model-dir DIR`.
class StandaloneAttempt : public Attempt {
 public:
  StandaloneAttempt(const std::string& cluster, const std::string& job, const std::string& model_dir,
                    const std::string& log_prefix)
      : model_dir_(model_dir) {
    fs::create_directories(model_dir);  // the servers' own model directory must exist when they start
    for (int s = 0; s < 2; ++s) {
      Start("server " + std::to_string(s),
            {kCairn, "server", "--cluster", cluster, "--index", std::to_string(s), "--model-dir", model_dir},
            log_prefix + "-server" + std::to_string(s) + ".log");
    }
    for (int w = 0; w < 2; ++w) {
      Start("worker " + std::to_string(w),
            {kCairn, "worker", "--cluster", cluster, "--index", std::to_string(w), job, "--model-dir", model_dir},
            log_prefix + "-worker" + std::to_string(w) + ".log");
    }
  }

  // Servers run until killed: the workers decide.
  bool Done() override { return !procs_[2]->running() && !procs_[3]->running(); }
  bool Succeeded() override { return Done() && procs_[2]->exited_ok() && procs_[3]->exited_ok(); }

  std::string KillOne(std::mt19937& rng) override {
    std::vector<int> live;
    for (int i = 0; i < 4; ++i) {
      if (procs_[i]->running()) live.push_back(i);
    }
    if (live.empty() || Done()) return "";
    const int victim = live[rng() % live.size()];
    procs_[victim]->Kill();
    return names_[victim];
  }

  // The others live on for a moment (as they would until an operator or a
  // supervisor noticed), then go down too; all of them are started again.
  bool TakeDown(std::mt19937& rng) override {
    std::this_thread::sleep_for(milliseconds(rng() % 300));
    for (auto& p : procs_) p->Kill();
    return NoProcessesLeft(model_dir_, seconds(10));
  }

  void Stop() override {
    for (auto& p : procs_) p->Kill();
  }

  std::string ChiefLog() override { return ReadFile(logs_[2]); }
  std::string AllLogs() override {
    std::string out;
    for (size_t i = 0; i < procs_.size(); ++i) {
      out += "---- " + names_[i] + " (" + procs_[i]->how() + ")\n" + ReadFile(logs_[i]);
    }
    return out;
  }
  std::string How() override {
    std::string out;
    for (size_t i = 0; i < procs_.size(); ++i) out += (i ? ", " : "") + names_[i] + " " + procs_[i]->how();
    return out;
  }

 private:
  void Start(const std::string& name, const std::vector<std::string>& argv, const std::string& log) {
    names_.push_back(name);
    logs_.push_back(log);
    procs_.push_back(std::make_unique<ChildProcess>(argv, std::vector<std::string>{}, log));
  }

  const std::string model_dir_;
  std::vector<std::string> names_;
  std::vector<std::string> logs_;
  std::vector<std::unique_ptr<ChildProcess>> procs_;  // servers 0, 1, workers 0, 1
};

using AttemptFactory = std::function<std::unique_ptr<Attempt>(const std::string& model_dir, const std::string& tag)>;

// ---- Comparing snapshots ----

// Every difference between step `step` of model directories `a` and `b`:
// the manifest and every part of every shard record of every server's
// database (testing::SnapshotDifferences), and every variable, slot and
// sparse table part as ReadSnapshot reassembles it. Snapshots written by
// different server counts (`same_layout` false) hold other shards in other
// databases: only the manifests (but for the server count) and what
// ReadSnapshot reassembles are compared.
std::vector<std::string> AllDifferences(const std::string& a, const std::string& b, int64_t step,
                                        bool same_layout) {
  std::vector<std::string> diffs;
  if (same_layout) {
    diffs = testing::SnapshotDifferences(a, b, step);
  } else {
    StatusOr<SnapshotManifest> ma = ReadManifest(a, step), mb = ReadManifest(b, step);
    if (!ma.ok() || !mb.ok()) {
      return {"cannot read manifest " + std::to_string(step) + ": " + ma.status().ToString() + " / " +
              mb.status().ToString()};
    }
    for (std::string& d : testing::ManifestDifferences(*ma, *mb)) {
      if (d != "num_servers") diffs.push_back(std::move(d));
    }
  }
  StatusOr<std::vector<SnapshotTensor>> ta = ReadSnapshot(a, step, "", nullptr);
  StatusOr<std::vector<SnapshotTensor>> tb = ReadSnapshot(b, step, "", nullptr);
  if (!ta.ok() || !tb.ok()) {
    diffs.push_back("cannot read step " + std::to_string(step) + ": " + ta.status().ToString() + " / " +
                    tb.status().ToString());
    return diffs;
  }
  std::map<std::string, const SnapshotTensor*> by_name;
  for (const SnapshotTensor& t : *tb) by_name[t.name] = &t;
  for (const SnapshotTensor& t : *ta) {
    auto it = by_name.find(t.name);
    if (it == by_name.end()) {
      diffs.push_back(t.name + ": missing in " + b);
      continue;
    }
    if (t.slot_of != it->second->slot_of || t.trainable != it->second->trainable) diffs.push_back(t.name + ": kind");
    if (std::string d = testing::FirstDifference(t.value, it->second->value); !d.empty()) {
      diffs.push_back(t.name + ": " + d);
    }
    by_name.erase(it);
  }
  for (const auto& [name, t] : by_name) diffs.push_back(name + ": missing in " + a);
  return diffs;
}

std::vector<int64_t> CommittedSteps(const std::string& dir) {
  std::vector<int64_t> steps;
  StatusOr<std::vector<SnapshotListing>> listing = ListSnapshots(dir);
  if (!listing.ok()) return steps;
  for (const SnapshotListing& l : *listing) {
    if (l.committed) steps.push_back(l.step);
  }
  return steps;
}

std::string Joined(const std::vector<std::string>& diffs, size_t most) {
  std::string text;
  for (size_t i = 0; i < diffs.size() && i < most; ++i) text += "\n  " + diffs[i];
  if (diffs.size() > most) text += "\n  ...";
  return text;
}

// Expects B's newest committed snapshot to be A's newest, and every step
// both committed to be identical. On a difference, details the first step
// that differs (where the runs parted) and the final one.
void ExpectSameSnapshots(const std::string& a, const std::string& b, bool same_layout = true) {
  const std::vector<int64_t> sa = CommittedSteps(a), sb = CommittedSteps(b);
  ASSERT_FALSE(sa.empty()) << "the reference run committed no snapshot";
  ASSERT_FALSE(sb.empty()) << "the interrupted runs committed no snapshot";
  EXPECT_EQ(sa.back(), sb.back()) << "newest committed step";
  std::vector<int64_t> common;
  std::set_intersection(sa.begin(), sa.end(), sb.begin(), sb.end(), std::back_inserter(common));
  ASSERT_FALSE(common.empty());
  std::vector<int64_t> bad;
  for (int64_t step : common) {
    std::vector<std::string> diffs = AllDifferences(a, b, step, same_layout);
    if (diffs.empty()) continue;
    if (bad.empty() || step == sa.back()) {
      ADD_FAILURE() << "snapshot " << step << " differs from the uninterrupted run's (" << diffs.size()
                    << " difference(s)):" << Joined(diffs, 20);
    }
    bad.push_back(step);
  }
  std::string bad_steps;
  for (int64_t s : bad) bad_steps += " " + std::to_string(s);
  std::printf("  %zu snapshot steps in common, %zu identical%s%s\n", common.size(), common.size() - bad.size(),
              bad.empty() ? "" : "; differing:", bad_steps.c_str());
}

// ---- The scenario ----

// How long the uninterrupted run took, and how long until its chief
// logged the first step (MPI start-up, data, connecting, initializing).
struct ReferenceTiming {
  double total_seconds = 0;
  double startup_seconds = 0;
};

// When to kill an attempt: at `seconds` after its start, or (`seconds` < 0)
// once its chief has logged global step `step`.
struct KillPlan {
  double seconds = -1;
  int64_t step = -1;
  std::string ToString() const {
    return seconds >= 0 ? Format("at %.2f s", seconds) : Format("at global step %lld", static_cast<long long>(step));
  }
};

// A third of the kills land during start-up (MPI, data, restore), a third
// when the chief logs a step, a third at a time past start-up. Both of the
// latter stay within `pace` steps past the newest committed snapshot, so
// the job moves on by a few snapshots per kill and reaches its end some
// kills before the last: a long soak kills in every phase of the job (training,
// snapshots, the final snapshot, a re-run of a complete job) rather than
// finishing it in the first few attempts.
//
// A re-run of a complete job only restores and ends, sooner than start-up
// took the reference run in standalone mode: once one has ended by itself
// (`complete_rerun_seconds` > 0), kills land within that time.
KillPlan ChooseKill(int64_t latest, int64_t total_steps, int kills, const ReferenceTiming& ref,
                    double complete_rerun_seconds, std::mt19937& rng) {
  const int64_t done = std::max<int64_t>(latest, 0);
  const int64_t pace = std::max<int64_t>(10, 4 * total_steps / std::max(kills, 1));
  const double per_step = (ref.total_seconds - ref.startup_seconds) / static_cast<double>(total_steps);
  auto uniform = [&](double hi) { return std::uniform_real_distribution<double>(0, hi)(rng); };
  KillPlan plan;
  if (done >= total_steps && complete_rerun_seconds > 0) {
    plan.seconds = uniform(complete_rerun_seconds);
    return plan;
  }
  switch (rng() % 3) {
    case 0:
      plan.seconds = uniform(ref.startup_seconds);
      break;
    case 1:
      if (done < total_steps) {
        plan.step = std::uniform_int_distribution<int64_t>(done + 1, std::min(total_steps, done + pace))(rng);
        break;
      }
      [[fallthrough]];  // a complete job only restores and ends: by time
    default:
      // Past start-up, up to ten steps' time beyond the steps left: the end
      // of the job too.
      plan.seconds = ref.startup_seconds + uniform(per_step * (std::min(pace, total_steps - done) + 10));
  }
  return plan;
}

// Waits until `a` ends by itself or for up to `limit`; true if it ended.
bool WaitDone(Attempt& a, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!a.Done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// Waits for the moment `plan` names, or for `a` to end first.
void WaitForKillMoment(Attempt& a, const KillPlan& plan, Clock::time_point start) {
  size_t scanned = 0;
  while (!a.Done() && Clock::now() - start < kAttemptLimit) {
    if (plan.seconds >= 0 ? SecondsSince(start) >= plan.seconds
                          : LoggedGlobalStep(a.ChiefLog(), &scanned) >= plan.step) {
      return;
    }
    std::this_thread::sleep_for(milliseconds(plan.seconds >= 0 ? 1 : 3));
  }
}

// The chief resumes from exactly the newest committed snapshot (`latest`,
// -1: none) and never starts over when there is one. An attempt that ran
// to its end must have said so; a killed one may have died before.
// Returns the step it resumed from (-1: it logged none).
int64_t CheckResumed(const std::string& log, int64_t latest, bool ran_to_end) {
  const std::vector<int64_t> resumed = ResumedSteps(log);
  if (latest >= 0) {
    EXPECT_EQ(log.find("starting from step 0"), std::string::npos)
        << "started over although snapshot " << latest << " was committed\n" << log;
    for (int64_t r : resumed) EXPECT_EQ(r, latest) << "resumed from the wrong snapshot\n" << log;
    if (ran_to_end) {
      EXPECT_EQ(resumed.size(), 1u) << "did not say it resumes from " << latest << "\n" << log;
    }
  } else {
    EXPECT_TRUE(resumed.empty()) << "resumed although nothing was committed\n" << log;
  }
  return resumed.empty() ? -1 : resumed.back();
}

struct Kill {
  std::string victim;   // "" if the attempt ended by itself before the kill
  double seconds = 0;   // from the attempt's start
};

// One attempt with a kill, and the rest of the job brought down after it.
Kill KillOneAttempt(Attempt& a, const KillPlan& plan, Clock::time_point start, std::mt19937& rng) {
  WaitForKillMoment(a, plan, start);
  Kill k;
  k.victim = a.Done() ? "" : a.KillOne(rng);
  k.seconds = SecondsSince(start);
  if (!k.victim.empty()) {
    EXPECT_TRUE(a.TakeDown(rng)) << "the job did not go down after " << k.victim << " was killed: " << a.How()
                                 << "\n" << a.AllLogs();
    return k;
  }
  EXPECT_TRUE(WaitDone(a, kAttemptLimit)) << "an attempt never ended: " << a.How();
  EXPECT_TRUE(a.Succeeded()) << "an attempt nobody killed failed: " << a.How() << "\n" << a.AllLogs();
  a.Stop();
  return k;
}

// Runs attempts into `model_dir`, killing one process of each, until
// `kills` kills have landed, then one last attempt to completion. The first
// attempts are killed as `planned` says, the others as ChooseKill does.
// Checks every attempt's resume against the newest committed step before it.
void RunWithKills(const AttemptFactory& start, const std::string& model_dir, const std::string& tag, int kills,
                  int64_t total_steps, const ReferenceTiming& ref, const std::vector<KillPlan>& planned,
                  std::mt19937& rng) {
  std::string resumed_list;
  int landed = 0, finished_before_kill = 0, remarks = 0;
  double complete_rerun_seconds = -1;  // how long a re-run of the complete job took, once one ended by itself
  for (int attempt = 0; landed < kills; ++attempt) {
    ASSERT_LT(attempt, 3 * kills + 20) << "too many attempts finished before their kill";
    SCOPED_TRACE("attempt " + std::to_string(attempt));
    const int64_t latest = LatestStep(model_dir);
    const KillPlan plan = attempt < static_cast<int>(planned.size())
                              ? planned[attempt]
                              : ChooseKill(latest, total_steps, kills, ref, complete_rerun_seconds, rng);
    std::unique_ptr<Attempt> a = start(model_dir, tag + "-a" + std::to_string(attempt));
    const auto t0 = Clock::now();
    const Kill kill = KillOneAttempt(*a, plan, t0, rng);
    const std::string& victim = kill.victim;
    const int64_t resumed = CheckResumed(a->ChiefLog(), latest, victim.empty());
    const std::string what = victim.empty() ? "finished before its kill"
                                            : Format("killed %s %s (%.2f s in)", victim.c_str(),
                                                     plan.ToString().c_str(), kill.seconds) + a->Remark();
    if (!a->Remark().empty()) ++remarks;
    std::printf("  attempt %d: newest committed %lld, chief resumed from %lld; %s\n", attempt,
                static_cast<long long>(latest), static_cast<long long>(resumed), what.c_str());
    std::fflush(stdout);
    if (::testing::Test::HasFailure()) return;
    if (victim.empty()) {
      ++finished_before_kill;
      if (latest >= total_steps) complete_rerun_seconds = kill.seconds;
    } else {
      ++landed;
      resumed_list += " " + std::to_string(resumed);
    }
  }
  const int64_t latest = LatestStep(model_dir);
  std::unique_ptr<Attempt> last = start(model_dir, tag + "-last");
  const auto t0 = Clock::now();
  ASSERT_TRUE(WaitDone(*last, kAttemptLimit)) << "the last attempt did not finish\n" << last->AllLogs();
  ASSERT_TRUE(last->Succeeded()) << "the last attempt failed: " << last->How() << "\n" << last->AllLogs();
  last->Stop();
  const int64_t resumed = CheckResumed(last->ChiefLog(), latest, /*ran_to_end=*/true);
  std::printf("  last attempt: newest committed %lld, chief resumed from %lld; ran to completion in %.2f s\n",
              static_cast<long long>(latest), static_cast<long long>(resumed), SecondsSince(t0));
  std::printf("%s: %d kills (%d attempts finished before their kill, %d with remarks); killed attempts resumed "
              "from:%s (-1: a fresh start, or killed before the restore); the last attempt from %lld\n",
              fs::path(tag).filename().c_str(), landed, finished_before_kill, remarks, resumed_list.c_str(),
              static_cast<long long>(resumed));
}

class ResumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "cairn_resume_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
    kills_ = EnvInt("CAIRN_RESUME_KILLS", 3);
    seed_ = static_cast<uint32_t>(EnvInt("CAIRN_RESUME_SEED", 20260417));
    std::printf("CAIRN_RESUME_KILLS=%d CAIRN_RESUME_SEED=%u\n", kills_, seed_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
    else std::printf("logs and model directories kept in %s\n", root_.c_str());
  }

  // The reference run into A (with `start`), then the interrupted ones
  // into B (with `rerun`, if given: another cluster shape; the first of
  // them killed as `planned` says, on top of the random kills); compares.
  void Check(const ResumeJob& job, const AttemptFactory& start, const AttemptFactory& rerun = nullptr,
             bool same_layout = true, const std::vector<KillPlan>& planned = {}) {
    const std::string a = root_ + "/A", b = root_ + "/B";
    const auto t0 = Clock::now();
    std::unique_ptr<Attempt> ref = start(a, root_ + "/ref");
    ReferenceTiming timing;
    size_t scanned = 0;
    while (!ref->Done() && Clock::now() - t0 < kAttemptLimit) {
      if (timing.startup_seconds == 0 && LoggedGlobalStep(ref->ChiefLog(), &scanned) >= 1) {
        timing.startup_seconds = SecondsSince(t0);
      }
      std::this_thread::sleep_for(milliseconds(3));
    }
    timing.total_seconds = SecondsSince(t0);
    ASSERT_TRUE(ref->Succeeded()) << "the uninterrupted run failed: " << ref->How() << "\n" << ref->AllLogs();
    ref->Stop();
    StatusOr<SnapshotManifest> final_a = ReadManifest(a, LatestStep(a));
    ASSERT_TRUE(final_a.ok()) << final_a.status().ToString();
    ASSERT_EQ(final_a->global_step, job.total_steps);
    std::printf("%s: uninterrupted run %.2f s (first step after %.2f s), final snapshot at global step %lld\n",
                job.name.c_str(), timing.total_seconds, timing.startup_seconds,
                static_cast<long long>(final_a->global_step));

    // Each test its own sequence of kills from the one seed.
    std::mt19937 rng(seed_ ^ static_cast<uint32_t>(std::hash<std::string>()(
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name())));
    const auto t1 = Clock::now();
    RunWithKills(rerun ? rerun : start, b, root_ + "/" + job.name, kills_ + static_cast<int>(planned.size()),
                 job.total_steps, timing, planned, rng);
    if (HasFailure()) return;
    std::printf("%s: interrupted runs took %.1f s in all\n", job.name.c_str(), SecondsSince(t1));
    const auto t2 = Clock::now();
    ExpectSameSnapshots(a, b, same_layout);
    std::printf("%s: compared in %.1f s\n", job.name.c_str(), SecondsSince(t2));
  }

  std::string WriteJob(const ResumeJob& job) {
    const std::string path = root_ + "/" + job.name + ".yaml";
    WriteFile(path, job.yaml);
    return path;
  }

  std::string root_;
  int kills_ = 3;
  uint32_t seed_ = 0;
};

AttemptFactory Mpirun(const std::string& job) {
  return [job](const std::string& model_dir, const std::string& tag) {
    return std::make_unique<MpirunAttempt>(job, model_dir, tag + ".log");
  };
}

// Each attempt on the next of `servers` (in turn) servers and two workers.
AttemptFactory MpirunOnServerCounts(const std::string& job, std::vector<int> servers) {
  auto next = std::make_shared<size_t>(0);
  return [job, servers, next](const std::string& model_dir, const std::string& tag) {
    const int count = servers[(*next)++ % servers.size()];
    return std::make_unique<MpirunAttempt>(job, model_dir, tag + ".log", count);
  };
}

AttemptFactory Standalone(const std::string& cluster, const std::string& job) {
  return [cluster, job](const std::string& model_dir, const std::string& tag) {
    return std::make_unique<StandaloneAttempt>(cluster, job, model_dir, tag);
  };
}

TEST_F(ResumeTest, MpirunLinearAdamJobKilledAndRerunEndsBitIdentical) {
  const ResumeJob job = LinearAdamJob();
  Check(job, Mpirun(WriteJob(job)));
}

TEST_F(ResumeTest, MpirunMlpMomentumJobKilledAndRerunEndsBitIdentical) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed (launch/install_deps.sh installs it)";
  }
  const ResumeJob job = MlpMomentumJob();
  Check(job, Mpirun(WriteJob(job)));
}

TEST_F(ResumeTest, MpirunBatchNormLayersJobKilledAndRerunEndsBitIdentical) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed (launch/install_deps.sh installs it)";
  }
  const ResumeJob job = BatchNormJob();
  Check(job, Mpirun(WriteJob(job)));
}

TEST_F(ResumeTest, MpirunWideDeepJobKilledAndRerunEndsBitIdentical) {
  const ResumeJob job = WideDeepAdagradJob();
  Check(job, Mpirun(WriteJob(job)));
}

// The reference on two servers; the interrupted attempts on 1, 3 and 2 in
// turn, so a restore re-routes the sparse rows (and re-shards the dense
// variables) onto another server count. The first two are killed a third
// and two thirds into training (so the job surely moves from 1 to 3 to 2
// servers mid-way), the others at random moments.
TEST_F(ResumeTest, MpirunWideDeepJobKilledAndRerunOnOtherServerCountsEndsBitIdentical) {
  const ResumeJob job = WideDeepAdagradJob();
  const std::string path = WriteJob(job);
  KillPlan third, two_thirds;
  third.step = job.total_steps / 3;
  two_thirds.step = 2 * job.total_steps / 3;
  Check(job, Mpirun(path), MpirunOnServerCounts(path, {1, 3, 2}), /*same_layout=*/false, {third, two_thirds});
}

TEST_F(ResumeTest, StandaloneLinearAdamJobKilledAndRerunEndsBitIdentical) {
  const ResumeJob job = LinearAdamJob();
  // One cluster file, the same ports for every attempt: re-running means
  // running the very same commands.
  const std::string cluster = root_ + "/cluster.yaml";
  WriteFile(cluster, "servers: [127.0.0.1:" + std::to_string(FreePort()) + ", 127.0.0.1:" +
                         std::to_string(FreePort()) + "]\nworkers: 2\n" +
                         SecretFileLine(kCairn, root_ + "/job.secret"));
  Check(job, Standalone(cluster, WriteJob(job)));
}

}  // namespace
}  // namespace cairn
