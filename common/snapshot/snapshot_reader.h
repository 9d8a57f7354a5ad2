// SnapshotReader: the one way to read a committed snapshot's values back —
// a variable's rows gathered across every server database that holds them.
//
// A server restoring its shards (whatever the server count that wrote the
// snapshot), `cairn inspect` / `cairn export` and the tests all read through
// it, with one set of checks:
//   - the manifest names only servers in [0, num_servers) and only
//     variables it declares;
//   - the manifest's shards of a variable cover every row exactly once;
//   - each database is complete and holds the manifest's step;
//   - each database's record of a shard is the one the manifest describes
//     (dtype, shape, rows, slots);
//   - every chunk's checksum (snapshot_db.h).
// Any failure is DataLoss (or NotFound for a missing database) naming the
// file, variable and rows.
//
// Part numbers: 0 is the variable's values, 1 + k is slot k of the
// manifest's ManifestVariable::slots. A scalar slot (one value per shard,
// the same on every shard: Adam's beta powers) is read whole, with rows
// [0, 0), from the variable's first shard.
//
// Sparse tables: ReadSparse gathers a table's rows from every server
// database that holds some (the manifest's rows_per_server), checking each
// database's record against the manifest (dim, slots, row count) and every
// chunk; a SparseRouting picks the ids wanted (a restoring server: those
// ServerOfId routes to it now), so a restore onto another server count
// re-routes every row. With the snapshot's own server count, a server's
// rows can only be in its own database: only that one is read.
//
// Not thread-safe. Databases are opened on first use and kept open.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/snapshot/manifest.h"
#include "common/snapshot/snapshot_db.h"
#include "common/status.h"
#include "common/tensor.h"

namespace cairn {

// Which rows of a sparse table SnapshotReader::ReadSparse reads: those
// ServerOfId(id, servers) routes to `server`; every row if servers is 0.
struct SparseRouting {
  int servers = 0;
  int server = 0;
};

class SnapshotReader {
 public:
  // Reads committed snapshot `step` of `model_dir` (-1: the newest). NotFound
  // if it was never committed, naming a save that never finished if its
  // directory is there without a manifest.
  static StatusOr<std::unique_ptr<SnapshotReader>> Open(const std::string& model_dir, int64_t step = -1);

  const SnapshotManifest& manifest() const { return manifest_; }
  const std::string& model_dir() const { return model_dir_; }
  int64_t step() const { return manifest_.step; }

  // Copies rows [row_begin, row_end) of `variable`'s part `part` into `out`
  // (exactly (row_end - row_begin) rows of the part; scalar slots: rows
  // [0, 0), one value).
  Status ReadRows(const std::string& variable, int part, int64_t row_begin, int64_t row_end, void* out,
                  uint64_t out_bytes);
  // The whole part: values of the variable's shape and dtype, or one slot
  // (float32; [1] for a scalar slot).
  StatusOr<Tensor> ReadPart(const std::string& variable, int part);

  // The rows of sparse table `table` that `routing` picks, sorted by id,
  // with the saved slots (slot_defs in the manifest's slot order). NotFound
  // if the snapshot has no such table.
  StatusOr<SparseCopy> ReadSparse(const std::string& table, SparseRouting routing = {});

 private:
  SnapshotReader(std::string model_dir, SnapshotManifest manifest)
      : model_dir_(std::move(model_dir)), manifest_(std::move(manifest)) {}
  Status CheckManifest() const;
  // The manifest's shards of `v` by first row, checked once to cover every
  // row exactly once.
  StatusOr<const std::vector<const ManifestShard*>*> ShardsOf(const ManifestVariable& v);
  StatusOr<SnapshotDb*> Db(int server);
  StatusOr<const ManifestVariable*> Variable(const std::string& name, int part) const;

  const std::string model_dir_;
  const SnapshotManifest manifest_;
  std::map<int, std::unique_ptr<SnapshotDb>> dbs_;                         // opened on first use
  std::map<std::string, std::vector<const ManifestShard*>> shards_of_;  // checked on first use
};

}  // namespace cairn
