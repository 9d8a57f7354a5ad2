// Where a benchmark's files go: a scratch directory made for the run and
// removed with everything in it, and a note of the machine and the disk it
// is on, for the report.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace cairn {

class ScratchDir {
 public:
  // A new directory `prefix`-XXXXXX inside `parent` ("" for the system's
  // temporary directory). Unavailable if it cannot be made.
  static StatusOr<std::unique_ptr<ScratchDir>> Make(const std::string& parent, const std::string& prefix);
  ~ScratchDir();
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  const std::string path_;
};

struct MachineNote {
  unsigned cores = 0;
  std::string cpu;
  std::string work_dir;
  std::string mount_point, device, fs_type;  // of work_dir, from /proc/mounts
  std::string ToString() const;
};

// The cores and CPU model, and the file system `work_dir` is on.
MachineNote DescribeMachine(const std::string& work_dir);

}  // namespace cairn
