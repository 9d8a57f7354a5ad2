// `cairn bench snapshot`: snapshot write and restore throughput against raw
// RocksDB for the same bytes, and the training stall against a memcpy of the
// shards.
//
// The real path: --servers Servers on loopback, one chief's PsClient,
// Session and Saver over a model of 4 float32 variables (--param-mib in
// all) split over the servers, and optionally a sparse table of
// --sparse-rows rows, after training pushes so the optimizer's slots are
// saved too. Each round snapshots (Saver::Begin, Finish), times a
// memcpy of the same bytes into touched and into fresh memory, runs
// MeasureRawRocksDb for each server's bytes at once, and restores onto a
// fresh cluster. Prints a table per phase with medians; --json writes every
// figure. The data goes into a fresh directory (under --dir or /tmp),
// removed at the end.
#pragma once

#include <cstdint>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/status.h"

namespace cairn {

struct SnapshotBenchOptions {
  int servers = 2;
  int param_mib = 96;            // parameters, all variables (0: none); slots come on top
  int64_t sparse_rows = 0;       // rows of one sparse table (0: none), created by pushes of 65,536 ids
  int32_t sparse_dim = 16;
  std::string optimizer = "adam";
  int rounds = 3;
  std::string dir;               // a fresh directory is made (and removed) inside it; "" for /tmp
  std::string json_path;         // "" for none (MeasureSnapshots ignores it)
  bool reuse_copy_buffers = true;  // ServerOptions::reuse_copy_buffers
};

// Runs the rounds, prints their tables and returns every figure as JSON
// (what --json writes).
StatusOr<nlohmann::json> MeasureSnapshots(const SnapshotBenchOptions& options);

void AddSnapshotBench(CLI::App& bench);
// Runs `cairn bench snapshot` if it was parsed; -1 otherwise.
int RunSnapshotBench(CLI::App& bench);

}  // namespace cairn
