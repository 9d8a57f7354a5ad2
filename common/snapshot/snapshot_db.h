// Snapshot database: one server's part of one snapshot, in a RocksDB database of
// its own (<model_dir>/snapshot-<step>/server-<index>.db, see model_dir.h).
//
// A database holds the shards one server copied for one step:
//   "meta/<shard>"                         ShardRecord (Cereal binary)
//   "data/<shard>/<part:04>/<chunk:08>"    the part's raw bytes, chunk by chunk
//   "done"                                 DoneRecord, written last
//   "sdata/<table>/<part:04>/<chunk:08>"   a sparse table's part, chunk by chunk
//   "sparse/<table>"                       SparseRecord (Cereal binary)
// Part 0 is the shard's values and part 1 + i its slot i. A sparse table's
// part 0 is its sorted ids (int64), part 1 its values [rows, dim] and part
// 2 + i its slot i [rows, width]. Databases written before sparse tables
// existed simply have no "sparse/" records. Bytes are stored
// exactly as they are in memory (float bits round-trip); every chunk carries
// an XXH3-64 checksum in its ShardRecord, checked on every read.
//
// WriteServerSnapshot returns only when everything is on disk (synced): a
// server acknowledges "prepared" after it returns. A database without its
// "done" record is incomplete and never read (OpenSnapshotDb refuses it).
//
// Not thread-safe per object; separate databases may be written and read
// from separate threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/snapshot/file_system.h"
#include "common/snapshot/shard_copy.h"
#include "common/status.h"
#include "common/tensor.h"

namespace cairn {

// What a database says about one shard.
struct ShardRecord {
  ShardInfo info;                      // spec and row range
  OptimizerSpec optimizer;
  std::vector<SlotDef> slot_defs;
  int64_t step = 0;                    // the snapshot step the shard was copied for
  uint64_t chunk_bytes = 0;            // bytes per chunk (the last of a part may be shorter)
  std::vector<uint64_t> part_bytes;    // 1 + slot_defs.size() entries
  std::vector<std::vector<uint64_t>> chunk_xxh3;  // per part, per chunk

  uint64_t total_bytes() const;
};

// What a database says about this server's part of one sparse table.
struct SparseRecord {
  SparseTableSpec spec;
  OptimizerSpec optimizer;
  std::vector<SlotDef> slot_defs;
  int64_t step = 0;
  int64_t rows = 0;                    // ids this server held
  uint64_t chunk_bytes = 0;
  std::vector<uint64_t> part_bytes;    // 2 + slot_defs.size() entries: ids, values, slots
  std::vector<std::vector<uint64_t>> chunk_xxh3;

  uint64_t total_bytes() const;
};

struct SnapshotWriteOptions {
  uint64_t chunk_bytes = uint64_t{4} << 20;  // a part is stored in chunks of this size
  StorageEnv env;                            // the file system written through, crash points
};

struct SnapshotIoStats {
  uint64_t bytes = 0;     // value and slot bytes (not keys or records)
  double seconds = 0;
};

// Writes `shards`, copied for `step`, into a new database at `db_path`
// (its parent directory must exist; an existing database there is an
// AlreadyExists error). Returns when the database is synced and closed.
// `sparse`: this server's part of each sparse table (names unique, rows
// sorted by id), written next to the shards; stats count their bytes too.
Status WriteServerSnapshot(const std::string& db_path, int64_t step, const std::vector<ShardCopy>& shards,
                           const std::vector<SparseCopy>& sparse, const SnapshotWriteOptions& options = {},
                           SnapshotIoStats* stats = nullptr);
Status WriteServerSnapshot(const std::string& db_path, int64_t step, const std::vector<ShardCopy>& shards,
                           const SnapshotWriteOptions& options = {}, SnapshotIoStats* stats = nullptr);

// A complete snapshot database, opened read-only.
class SnapshotDb {
 public:
  virtual ~SnapshotDb() = default;
  virtual int64_t step() const = 0;
  virtual const std::vector<ShardRecord>& shards() const = 0;  // sorted by name
  virtual const ShardRecord* Find(const std::string& shard) const = 0;

  // Copies rows [row_begin, row_end) (in the variable's row numbering, which
  // must lie inside the shard's range) of part `part` into `out`, which
  // holds (row_end - row_begin) rows of the part (scalar slots: one value,
  // with row_begin = row_end = 0 meaning "the whole part"). Verifies the
  // checksum of every chunk it touches: DataLoss naming the database, shard
  // and part on a mismatch, a missing chunk or a short value.
  virtual Status ReadRows(const std::string& shard, int part, int64_t row_begin, int64_t row_end, void* out,
                          uint64_t out_bytes) = 0;
  // The whole part (its values or one slot) as a Tensor of the part's shape.
  virtual StatusOr<Tensor> ReadPart(const std::string& shard, int part) = 0;

  // This server's parts of sparse tables, sorted by name.
  virtual const std::vector<SparseRecord>& sparse_tables() const = 0;
  virtual const SparseRecord* FindSparse(const std::string& table) const = 0;
  // Every row of `table` in this database, every chunk's checksum verified
  // (DataLoss naming the database, table and part otherwise); NotFound if
  // the database has no such table.
  virtual StatusOr<SparseCopy> ReadSparse(const std::string& table) = 0;
};

// Opens the database at `db_path` read-only. NotFound if there is none;
// DataLoss if it is not a complete snapshot database (no "done" record, or
// records that do not decode).
StatusOr<std::unique_ptr<SnapshotDb>> OpenSnapshotDb(const std::string& db_path);

}  // namespace cairn
