// The standalone job's cluster file: one per job, read by every server and
// worker process (see train_job.h, standalone mode):
//   servers: [host:port, ...]   # index = server index
//   workers: 2
//   bind: 0.0.0.0               # optional: where servers listen (default: their host)
//   secret_file: cairn.secret   # optional: the job's secret (relative to this file)
// The text is untrusted (fuzzed: tests/fuzz/cluster_file_fuzzer.cc): every
// error is InvalidArgument naming the file.
#pragma once

#include <string>

#include "common/cluster_spec.h"
#include "common/status.h"

namespace cairn {

// Parses a cluster file's `text`; `path` names it in errors and anchors a
// relative secret_file. `bind` and `secret_file` (optional) receive those
// keys ("" when absent).
StatusOr<ClusterSpec> ParseClusterFile(const std::string& text, const std::string& path, std::string* bind = nullptr,
                                       std::string* secret_file = nullptr);

// Reads and parses the cluster file at `path`.
StatusOr<ClusterSpec> LoadClusterFile(const std::string& path, std::string* bind = nullptr,
                                      std::string* secret_file = nullptr);

}  // namespace cairn
