#include "common/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace cairn {

Status ErrnoStatus(int err, const std::string& what) {
  std::string message = what + ": " + std::generic_category().message(err);
  switch (err) {
    case ENOENT: case ENOTDIR: return NotFound(std::move(message));
    case EEXIST: return AlreadyExists(std::move(message));
    case EACCES: case EPERM: case EROFS: case ENOSPC: case EDQUOT: return FailedPrecondition(std::move(message));
    default: return Internal(std::move(message));
  }
}

Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open directory '" + dir + "'");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, "cannot sync directory '" + dir + "'");
  return Status::OK();
}

}  // namespace cairn
