// `cairn snapshots`, `cairn inspect` and `cairn export`: reading a model
// directory without a cluster.
//
//   cairn snapshots DIR                                  every snapshot: step, time, size, committed or not
//   cairn inspect DIR [--step N] [--var NAME]            variables, shapes, dtypes, trainable, slot-of,
//                                                        min/max/mean; sparse tables' dim, rows, bytes,
//                                                        value statistics and rows per server
//   cairn export DIR [--step N] --out FILE.npz           every variable and slot as a NumPy archive, and
//                                                        each sparse table as <table>/ids, <table>/values
//                                                        and its slots
//
// inspect and export read one variable (with its slots) at a time, so their
// memory is bounded by the largest variable, not the model. A missing,
// foreign or corrupted directory, a truncated value or a manifest naming
// databases that are not there is an error naming what is wrong (exit code
// 1), never a crash and never a partial result.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/status.h"
#include "common/tensor.h"
#include "common/snapshot/model_dir.h"

namespace cairn {

// One variable of a snapshot, or one optimizer slot of one, reassembled from
// every server's database (checksums verified).
struct SnapshotTensor {
  std::string name;       // "dense_0/W", or a slot "dense_0/W/Adam/m"
  std::string slot_of;    // the variable a slot belongs to ("" for variables)
  bool trainable = false;
  Tensor value;
  // Parts of a sparse table: "<table>/ids" (int64 [n], sorted),
  // "<table>/values" ([n, dim]) and its slots "<table>/<Optimizer>/<slot>"
  // ([n, dim] or [n, 1]) name the table here; "" for variables.
  std::string sparse_table;
};

// Reads the committed snapshot `step` (-1: the newest) of `model_dir`:
// every variable (or just `only`, if non-empty: a variable name, and its
// slots come with it) and every slot. Scalar slots (one value per shard)
// are taken from the variable's first shard. NotFound if `only` names no
// variable of the snapshot.
StatusOr<std::vector<SnapshotTensor>> ReadSnapshot(const std::string& model_dir, int64_t step,
                                                   const std::string& only = "",
                                                   SnapshotManifest* manifest = nullptr);

// Registers the three commands on `app`; RunSnapshotTools runs the one
// parsed and returns the exit code, or -1 if none of them was parsed.
void AddSnapshotTools(CLI::App& app);
int RunSnapshotTools(CLI::App& app);

}  // namespace cairn
