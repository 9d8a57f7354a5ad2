#include "bench/scratch_dir.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

namespace cairn {

StatusOr<std::unique_ptr<ScratchDir>> ScratchDir::Make(const std::string& parent, const std::string& prefix) {
  std::error_code ec;
  const std::filesystem::path base = parent.empty() ? std::filesystem::temp_directory_path(ec) : std::filesystem::path(parent);
  std::string pattern = (base / (prefix + "-XXXXXX")).string();
  if (ec || ::mkdtemp(pattern.data()) == nullptr) {
    return Unavailable("cannot make a directory like '" + pattern + "'");
  }
  return std::unique_ptr<ScratchDir>(new ScratchDir(std::filesystem::canonical(pattern).string()));
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string MachineNote::ToString() const {
  return fmt::format("machine: {} cores ({}), shared with other jobs; data in {} on {} ({} mounted at {})", cores, cpu,
                     work_dir, device, fs_type, mount_point);
}

MachineNote DescribeMachine(const std::string& work_dir) {
  MachineNote m;
  m.cores = std::thread::hardware_concurrency();
  m.work_dir = work_dir;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      m.cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  // The longest mount point that is a prefix of the directory.
  std::ifstream mounts("/proc/mounts");
  std::string device, point, type, rest;
  while (mounts >> device >> point >> type && std::getline(mounts, rest)) {
    const bool prefix = work_dir.rfind(point, 0) == 0 &&
                        (point == "/" || work_dir.size() == point.size() || work_dir[point.size()] == '/');
    if (prefix && point.size() >= m.mount_point.size()) m = {m.cores, m.cpu, m.work_dir, point, device, type};
  }
  return m;
}

}  // namespace cairn
