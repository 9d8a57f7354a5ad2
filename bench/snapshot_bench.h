// `cairn bench snapshot`: snapshot write and restore throughput against raw
// RocksDB for the same bytes, and the training stall against a memcpy of the
// shards.
#pragma once

#include <CLI/CLI.hpp>

namespace cairn {

void AddSnapshotBench(CLI::App& bench);
// Runs `cairn bench snapshot` if it was parsed; -1 otherwise.
int RunSnapshotBench(CLI::App& bench);

}  // namespace cairn
