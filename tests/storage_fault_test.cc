// Storage faults during cluster snapshots, injected through the FileSystem
// seam (tests/fault_file_system.h) under the servers' snapshot writers and
// the chief's manifest commit: real servers on 127.0.0.1, a real worker,
// RocksDB on disk. Whatever fails — ENOSPC or EIO while a server writes its
// database, a short write, an fsync of a database or of the manifest — the
// snapshot is reported failed with a clear error, no manifest is
// committed, older snapshots stay whole and restorable, and training goes
// on.
#include <stdlib.h>

#include <cerrno>
#include <filesystem>

#include <gtest/gtest.h>

#include "common/event_loop.h"
#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_reader.h"
#include "ps/local_cluster.h"
#include "tests/fault_file_system.h"
#include "tests/status_matchers.h"
#include "tests/test_worker.h"
#include "tests/test_secret.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using testing::Mlp;
using testing::Worker;

class StorageFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/storage_fault_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    model_dir_ = root_ + "/model";
    LocalClusterOptions o;
    o.servers = 2;
    o.snapshot.env.fs = &fs_;
    o.model_dir = model_dir_;
    auto cluster = LocalCluster::Start(loop_, WithTestAuth(o));
    ASSERT_OK(cluster);
    cluster_ = std::move(*cluster);
    testing::WorkerOptions w;
    w.build = Mlp(0.1, 1);
    worker_ = std::make_unique<Worker>(loop_, cluster_->endpoints(), w);
    ASSERT_TRUE(worker_->ready());
    SaverOptions so;
    so.env.fs = &fs_;
    auto saver = worker_->NewSaver(model_dir_, so);
    ASSERT_OK(saver);
    saver_ = std::move(*saver);
  }
  void TearDown() override {
    saver_.reset();
    worker_.reset();
    cluster_.reset();
    fs::remove_all(root_);
  }

  // Trains to `step` (one batch per step), then saves; returns the save's status.
  Status TrainAndSave(int64_t step) {
    while (trained_ < step) RETURN_IF_ERROR(worker_->Step(++trained_));
    return saver_->Save(step).status();
  }

  // The snapshot that failed left no commit, the older one reads back whole,
  // and training goes on.
  void ExpectOnlyOlderSnapshotAndTrainingGoesOn(int64_t failed, int64_t older) {
    EXPECT_FALSE(fs::exists(ManifestPath(model_dir_, failed))) << "a failed snapshot was committed";
    StatusOr<int64_t> latest = LatestCommittedStep(model_dir_);
    ASSERT_OK(latest);
    EXPECT_EQ(*latest, older);
    auto reader = SnapshotReader::Open(model_dir_, older);
    ASSERT_OK(reader);
    for (const ManifestVariable& v : (*reader)->manifest().variables) {
      for (size_t part = 0; part <= v.slots.size(); ++part) {
        EXPECT_OK((*reader)->ReadPart(v.spec.name, static_cast<int>(part)).status());
      }
    }
    fs_.Heal();
    ASSERT_OK(worker_->Step(++trained_));
    EXPECT_OK(TrainAndSave(trained_ + 1));  // and the next snapshot commits
  }

  EventLoop loop_{2};
  FaultFileSystem fs_;
  std::string root_, model_dir_;
  std::unique_ptr<LocalCluster> cluster_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<Saver> saver_;
  int64_t trained_ = 0;
};

TEST_F(StorageFaultTest, NoSpaceWhileAServerWritesFailsTheSnapshotAndCommitsNothing) {
  ASSERT_OK(TrainAndSave(2));
  fs_.FailWrites({"server-1.db/bulk.sst", ENOSPC, 0, false});  // the data table
  const Status s = TrainAndSave(4);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s;
  EXPECT_NE(s.message().find("server-1.db"), std::string::npos) << s;
  ExpectOnlyOlderSnapshotAndTrainingGoesOn(4, 2);
}

TEST_F(StorageFaultTest, AnIoErrorWithAShortWriteFailsTheSnapshotAndCommitsNothing) {
  ASSERT_OK(TrainAndSave(2));
  fs_.FailWrites({"server-0.db/bulk.sst", EIO, 0, true});
  const Status s = TrainAndSave(4);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s;
  ExpectOnlyOlderSnapshotAndTrainingGoesOn(4, 2);
}

TEST_F(StorageFaultTest, AFailedFsyncOfADatabaseNeverCommits) {
  ASSERT_OK(TrainAndSave(2));
  fs_.FailSyncs({"server-0.db", EIO, 0, false});
  const Status s = TrainAndSave(4);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot sync"), std::string::npos) << s;
  ExpectOnlyOlderSnapshotAndTrainingGoesOn(4, 2);
}

TEST_F(StorageFaultTest, AFailedFsyncOfTheManifestNeverCommits) {
  ASSERT_OK(TrainAndSave(2));
  fs_.FailSyncs({".manifest.tmp", EIO, 0, false});
  const Status s = TrainAndSave(4);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not committed"), std::string::npos) << s;
  ExpectOnlyOlderSnapshotAndTrainingGoesOn(4, 2);
}

TEST_F(StorageFaultTest, AFailedFsyncOfTheModelDirectoryAfterTheRenameTakesTheCommitBack) {
  ASSERT_OK(TrainAndSave(2));
  // The rename is the commit; only the synced directory makes it durable.
  fs_.FailSyncs({model_dir_, EIO, 0, false, /*whole_path=*/true});
  const Status s = TrainAndSave(4);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not committed"), std::string::npos) << s;
  ExpectOnlyOlderSnapshotAndTrainingGoesOn(4, 2);
}

TEST_F(StorageFaultTest, NoSpaceForTheManifestCommitsNothing) {
  ASSERT_OK(TrainAndSave(2));
  fs_.FailWrites({".manifest.tmp", ENOSPC, 0, false});
  const Status s = TrainAndSave(4);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s;
  ExpectOnlyOlderSnapshotAndTrainingGoesOn(4, 2);
}

}  // namespace
}  // namespace cairn
