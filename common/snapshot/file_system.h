// FileSystem: the seam under everything that writes a model directory — the
// manifest commit, retention, and (through a bridge in snapshot_db.cc) the
// files RocksDB writes for a server's snapshot database.
//
// Production code uses the POSIX file system (DefaultFileSystem()); tests
// wrap it to make a write fail with ENOSPC or EIO, write short, or fail an
// fsync (tests/fault_file_system.h), the way leveldb's FaultInjectionTestEnv
// wraps its Env. Reads (listing a directory, reading a manifest, RocksDB's
// reads) do not pass through the seam: the faults worth testing are the
// ones that must keep a snapshot from being committed.
//
// Implementations are thread-safe; a WritableFile is used by one thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/crash_point.h"
#include "common/status.h"

namespace cairn {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends all of `data`, or fails (a short write is an error).
  virtual Status Append(std::string_view data) = 0;
  // Makes the appended bytes durable (fdatasync).
  virtual Status Sync() = 0;
  virtual Status Close() = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates `path` (or truncates it) for writing.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Makes the creation, rename or removal of `dir`'s entries durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // Creates `dir` and its missing parents.
  virtual Status CreateDirs(const std::string& dir) = 0;
  // Removes a file or a directory tree; a missing path is OK.
  virtual Status RemoveAll(const std::string& path) = 0;
};

// The process's POSIX file system. Never null; lives for the process.
FileSystem* DefaultFileSystem();

// Writes `content` to `path` (created or truncated) and syncs it.
Status WriteFileSynced(FileSystem& fs, const std::string& path, std::string_view content);

// Where the model directory and the snapshot writer do their file work.
struct StorageEnv {
  FileSystem* fs = nullptr;            // borrowed; nullptr: DefaultFileSystem()
  const CrashPoints* crash = nullptr;  // borrowed; nullptr: nothing armed

  FileSystem& file_system() const { return fs ? *fs : *DefaultFileSystem(); }
  void Reach(const char* point) const { ReachCrashPoint(crash, point); }
};

}  // namespace cairn
