// Small POSIX file helpers shared by the code that makes files durable
// (snapshot databases, manifests, exports).
#pragma once

#include <string>

#include "common/status.h"

namespace cairn {

// `what: strerror(err)` with a code that says what kind of failure it is:
// NotFound (ENOENT, ENOTDIR), AlreadyExists (EEXIST), FailedPrecondition
// (permissions, read-only or full file system), Internal otherwise.
Status ErrnoStatus(int err, const std::string& what);

// fsyncs directory `dir`, making the creation, rename or removal of its
// entries durable.
Status SyncDir(const std::string& dir);

}  // namespace cairn
