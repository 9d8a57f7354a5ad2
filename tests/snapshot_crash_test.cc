// Crash safety of snapshots with real processes: two `cairn server`
// processes and a chief (`cairn worker --index 0`) snapshot every step into
// one model directory, and each trial kills one of them with SIGKILL, at a
// crash point inside prepare or commit, or at a random time. After every
// trial the newest committed snapshot must be whole (every shard of every
// server's database at the manifest's step, every checksum good), and the
// next trial's chief must resume from exactly that snapshot.
//
// CAIRN_CRASH_TRIALS (default 24) sets the number of trials; the seed is
// fixed, so a run is repeatable up to process timing.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_db.h"
#include "tests/subprocess.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::ChildProcess;

const char* const kServerPoints[] = {"server.after_copy", "server.before_write", "snapshot_db.before_done",
                                     "server.after_write"};
const char* const kChiefPoints[] = {"chief.after_prepare", "chief.before_commit", "manifest.before_rename",
                                    "chief.after_commit", "retention.after_manifests_removed"};

using testing::FreePort;
using testing::ReadFile;
using testing::SecretFileLine;
using testing::WriteFile;

// Every committed snapshot whole: each server's database complete, each
// shard copied for the manifest's step, every part readable (checksums).
// Returns the newest committed step, or -1 if none.
int64_t VerifyModelDir(const std::string& dir) {
  StatusOr<std::vector<SnapshotListing>> listing = ListSnapshots(dir);
  if (!listing.ok()) {
    ADD_FAILURE() << listing.status().ToString();
    return -1;
  }
  int64_t newest = -1;
  for (const SnapshotListing& l : *listing) {
    if (!l.committed) continue;
    newest = l.step;
    StatusOr<SnapshotManifest> m = ReadManifest(dir, l.step);
    if (!m.ok()) {
      ADD_FAILURE() << "committed snapshot " << l.step << ": " << m.status().ToString();
      continue;
    }
    EXPECT_EQ(m->global_step, m->step) << "sync mode: a snapshot is one global step";
    size_t shards = 0;
    for (int s = 0; s < m->num_servers; ++s) {
      StatusOr<std::unique_ptr<SnapshotDb>> db = OpenSnapshotDb(ServerDbPath(dir, l.step, s));
      if (!db.ok()) {
        ADD_FAILURE() << "committed snapshot " << l.step << ": " << db.status().ToString();
        continue;
      }
      EXPECT_EQ((*db)->step(), l.step);
      for (const ShardRecord& r : (*db)->shards()) {
        EXPECT_EQ(r.step, l.step) << r.info.spec.name;
        for (size_t part = 0; part < r.part_bytes.size(); ++part) {
          StatusOr<Tensor> t = (*db)->ReadPart(r.info.spec.name, static_cast<int>(part));
          EXPECT_TRUE(t.ok()) << "snapshot " << l.step << " " << r.info.spec.name << " part " << part << ": "
                              << t.status().ToString();
        }
        ++shards;
      }
    }
    EXPECT_EQ(shards, m->shards.size()) << "snapshot " << l.step << ": databases and manifest disagree";
  }
  StatusOr<int64_t> latest = LatestCommittedStep(dir);
  EXPECT_EQ(latest.ok() ? *latest : -1, newest) << "the newest committed snapshot is the one restored";
  return newest;
}

TEST(SnapshotCrash, NewestCommittedSnapshotSurvivesKillsDuringPrepareAndCommit) {
  const char* env_trials = std::getenv("CAIRN_CRASH_TRIALS");
  const int trials = env_trials ? std::atoi(env_trials) : 24;
  const std::string root = ::testing::TempDir() + "cairn_crash_" + std::to_string(getpid());
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string job = root + "/job.yaml";
  const std::string model_dir = root + "/model";
  // Linear regression with Adam (per-element and scalar slots), split over
  // both servers, in sync mode.
  WriteFile(job,
            "name: crash\n"
            "model: {kind: linear_regression}\n"
            "data: {kind: synthetic_linear, examples: 4000, features: 300}\n"
            "train: {batch_size: 20, epochs: 1000, log_every_steps: 100000}\n"
            "optimizer: {kind: adam, learning_rate: 0.01}\n"
            "cluster: {consistency: sync, sync_timeout_ms: 10000, timeout_ms: 20000, split_threshold_bytes: 512}\n"
            "snapshot: {every_steps: 1, every_secs: 0, max_to_keep: 3}\n");

  // Servers take snapshots only in their own model directory, which must
  // exist when they start; the job's secret is named by the cluster file.
  fs::create_directories(model_dir);
  const std::string secret_line = SecretFileLine(CAIRN_BINARY, root + "/job.secret");
  ASSERT_FALSE(secret_line.empty());
  std::mt19937 rng(20261123);
  int64_t expected_resume = -1;  // the step the next chief must resume from
  int crashed_at_point = 0, killed_at_random = 0, resumed = 0;
  for (int trial = 0; trial < trials; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const std::string cluster = root + "/cluster.yaml";
    WriteFile(cluster, "servers: [127.0.0.1:" + std::to_string(FreePort()) + ", 127.0.0.1:" +
                           std::to_string(FreePort()) + "]\nworkers: 1\n" + secret_line);
    // Victim 0, 1: a server; 2: the chief. Half the trials use a crash point.
    const int victim = static_cast<int>(rng() % 3);
    const bool at_point = rng() % 2 == 0;
    std::string point;
    if (at_point) {
      point = victim < 2 ? kServerPoints[rng() % std::size(kServerPoints)]
                         : kChiefPoints[rng() % std::size(kChiefPoints)];
      point += ":" + std::to_string(1 + rng() % 5);
    }
    const milliseconds random_delay(300 + rng() % 1500);
    auto env_for = [&](int who) {
      return who == victim && at_point ? std::vector<std::string>{"CAIRN_CRASH_AT=" + point}
                                       : std::vector<std::string>{};
    };
    const std::string tag = root + "/t" + std::to_string(trial);
    std::vector<std::unique_ptr<ChildProcess>> procs;
    for (int s = 0; s < 2; ++s) {
      procs.push_back(std::make_unique<ChildProcess>(
          std::vector<std::string>{CAIRN_BINARY, "server", "--cluster", cluster, "--index", std::to_string(s),
                                   "--model-dir", model_dir},
          env_for(s), tag + "-server" + std::to_string(s) + ".log"));
    }
    const std::string chief_log = tag + "-chief.log";
    procs.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{CAIRN_BINARY, "worker", "--cluster", cluster, "--index", "0", job, "--model-dir",
                                 model_dir},
        env_for(2), chief_log));
    ChildProcess& target = *procs[victim];
    if (at_point) {
      ASSERT_TRUE(target.WaitExit(milliseconds(60000))) << "crash point " << point << " never reached";
      EXPECT_TRUE(target.killed_by_sigkill()) << point << ": the victim " << target.how() << "\n"
                                              << ReadFile(chief_log);
      ++crashed_at_point;
    } else {
      // The kill instant is the randomized part of the trial.
      if (!target.WaitExit(random_delay)) {
        target.Kill();
        ++killed_at_random;
      }
    }
    for (auto& p : procs) p->Kill();

    // The chief of this trial resumed from what the previous trial left.
    const std::string log = ReadFile(chief_log);
    if (expected_resume >= 0 && log.find("resuming from snapshot") != std::string::npos) {
      EXPECT_NE(log.find("resuming from snapshot " + std::to_string(expected_resume) + " "), std::string::npos)
          << "expected to resume from " << expected_resume << ":\n" << log;
      ++resumed;
    }
    expected_resume = VerifyModelDir(model_dir);
    if (HasFailure()) {
      ADD_FAILURE() << "victim " << victim << " point '" << point << "'\nchief log:\n" << log;
      break;
    }
  }
  std::printf("%d trials: %d crash points, %d random-time kills, %d verified resumes; newest committed step %lld\n",
              trials, crashed_at_point, killed_at_random, resumed, static_cast<long long>(expected_resume));
  EXPECT_GT(expected_resume, 0) << "no snapshot was ever committed";
  EXPECT_GT(resumed, trials / 2) << "most trials should resume from the previous one's snapshot";
  if (!HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace cairn
