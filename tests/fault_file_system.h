// FaultFileSystem: a FileSystem (common/snapshot/file_system.h) that passes
// everything to the POSIX one except the faults a test arms: a write that
// fails with ENOSPC or EIO (optionally after writing part of its bytes: a
// short write), a failed fsync of a file or a directory, or no syncing at
// all (for tests that do not check durability and should not pay for it).
//
// Faults match paths by substring ("" matches every path) and fire from the
// N-th matching call on (after = N - 1 calls pass). Thread-safe.
#pragma once

#include <cerrno>
#include <mutex>
#include <string>

#include "common/file_io.h"
#include "common/snapshot/file_system.h"

namespace cairn {

class FaultFileSystem final : public FileSystem {
 public:
  struct Fault {
    std::string path_contains;  // "" matches every path
    int error = 0;              // errno to fail with (ENOSPC, EIO); 0: no fault
    int after = 0;              // matching calls that pass before the fault fires
    bool short_write = false;   // writes: write half the bytes first
    bool whole_path = false;    // path_contains must be the whole path
  };

  void FailWrites(Fault f) { std::lock_guard<std::mutex> l(mu_); write_ = f; }
  void FailSyncs(Fault f) { std::lock_guard<std::mutex> l(mu_); sync_ = f; }  // files and directories
  void SkipSyncs(bool skip) { std::lock_guard<std::mutex> l(mu_); skip_syncs_ = skip; }
  void Heal() {
    std::lock_guard<std::mutex> l(mu_);
    write_ = sync_ = Fault{};
  }
  int faults_fired() const { std::lock_guard<std::mutex> l(mu_); return fired_; }

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, base_->NewWritableFile(path));
    return std::unique_ptr<WritableFile>(new File(this, path, std::move(file)));
  }
  Status Rename(const std::string& from, const std::string& to) override { return base_->Rename(from, to); }
  Status SyncDir(const std::string& dir) override {
    int err = 0;
    if (!BeforeSync(dir, &err)) return Status::OK();
    if (err) return ErrnoStatus(err, "cannot sync directory '" + dir + "' (injected)");
    return base_->SyncDir(dir);
  }
  Status CreateDirs(const std::string& dir) override { return base_->CreateDirs(dir); }
  Status RemoveAll(const std::string& path) override { return base_->RemoveAll(path); }

 private:
  class File final : public WritableFile {
   public:
    File(FaultFileSystem* fs, std::string path, std::unique_ptr<WritableFile> base)
        : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
    Status Append(std::string_view data) override {
      bool short_write = false;
      const int err = fs_->Fires(fs_->write_, path_, &short_write);
      if (err == 0) return base_->Append(data);
      if (short_write) RETURN_IF_ERROR(base_->Append(data.substr(0, data.size() / 2)));
      return ErrnoStatus(err, "cannot write '" + path_ + "' (injected" + (short_write ? ", short write)" : ")"));
    }
    Status Sync() override {
      int err = 0;
      if (!fs_->BeforeSync(path_, &err)) return Status::OK();
      if (err) return ErrnoStatus(err, "cannot sync '" + path_ + "' (injected)");
      return base_->Sync();
    }
    Status Close() override { return base_->Close(); }

   private:
    FaultFileSystem* const fs_;
    const std::string path_;
    const std::unique_ptr<WritableFile> base_;
  };

  // False: skip the sync. Otherwise *err is the injected errno (0: none).
  bool BeforeSync(const std::string& path, int* err) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (skip_syncs_) return false;
    }
    *err = Fires(sync_, path, nullptr);
    return true;
  }

  int Fires(Fault& f, const std::string& path, bool* short_write) {
    std::lock_guard<std::mutex> l(mu_);
    if (f.error == 0) return 0;
    if (f.whole_path ? path != f.path_contains : path.find(f.path_contains) == std::string::npos) return 0;
    if (f.after > 0) {
      --f.after;
      return 0;
    }
    ++fired_;
    if (short_write) *short_write = f.short_write;
    return f.error;
  }

  FileSystem* const base_ = DefaultFileSystem();
  mutable std::mutex mu_;
  Fault write_;             // guarded by mu_
  Fault sync_;              // guarded by mu_
  bool skip_syncs_ = false; // guarded by mu_
  int fired_ = 0;           // guarded by mu_
};

}  // namespace cairn
