// `cairn bench snapshot`: snapshot write and restore throughput against raw
// RocksDB for the same bytes, and the training stall against a memcpy of the
// shards.
//
// The real path: --servers Servers on loopback, one chief's PsClient,
// Session and Saver over a model of 4 float32 variables (--param-mib in
// all) split over the servers, after one training push so the optimizer's
// slots are saved too. Each round snapshots (Saver::Begin, Finish), times a
// memcpy of the same bytes into touched and into fresh memory, runs
// MeasureRawRocksDb for each server's bytes at once, and restores onto a
// fresh cluster. Prints a table per phase with medians; --json writes every
// figure. The data goes into a fresh directory (under --dir or /tmp),
// removed at the end.
#pragma once

#include <CLI/CLI.hpp>

namespace cairn {

void AddSnapshotBench(CLI::App& bench);
// Runs `cairn bench snapshot` if it was parsed; -1 otherwise.
int RunSnapshotBench(CLI::App& bench);

}  // namespace cairn
