// RocksDB as the snapshot store uses it: one set of database options, a
// writer that builds a whole database from one table file, read-only opens,
// and Status conversion. Shared by the snapshot database (snapshot_db.h)
// and the raw-RocksDB baseline of `cairn bench snapshot`, so that both take
// the same path to disk.
//
// A StorageEnv whose file system is not the default one is bridged under
// RocksDB: every file and directory RocksDB writes or syncs for a new
// database goes through it (file_system.h), so tests can make those fail.
#pragma once

#include <memory>
#include <string>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>

#include "common/snapshot/file_system.h"
#include "common/status.h"

namespace cairn {

// `what: <rocksdb message>` with Cairn's code: DataLoss for corruption,
// NotFound, FailedPrecondition for a full disk, InvalidArgument, Internal.
Status FromRocks(const rocksdb::Status& s, const std::string& what);

// The options every snapshot database is written and read with (why: see
// rocks_db.cc).
rocksdb::Options SnapshotDbOptions();
// Reads of value chunks (checksummed by Cairn, not RocksDB) and of records
// (RocksDB's block checksums cover them).
rocksdb::ReadOptions ChunkReadOptions();
rocksdb::ReadOptions RecordReadOptions();

// NotFound if nothing is at `db_path`; DataLoss if what is there is not a
// complete database.
StatusOr<std::unique_ptr<rocksdb::DB>> OpenReadOnly(const std::string& db_path);

// Writes a new database in one go. Put() takes keys in strictly increasing
// order and appends them to one SST file; Commit() makes them durable, then
// writes `done_key` and syncs every directory entry.
class BulkWriter {
 public:
  // AlreadyExists if `db_path` exists, NotFound if its parent does not.
  static StatusOr<std::unique_ptr<BulkWriter>> Create(const std::string& db_path, const StorageEnv& env = {});
  ~BulkWriter();

  Status Put(const std::string& key, const rocksdb::Slice& value);
  Status Commit(const std::string& done_key, const std::string& done_value);

 private:
  BulkWriter(const std::string& db_path, const StorageEnv& env) : path_(db_path), env_(env) {}
  Status Ingest();

  const std::string path_;
  const StorageEnv env_;
  std::unique_ptr<rocksdb::Env> rocks_env_;  // the bridge, if any; outlives db_ and sst_
  rocksdb::Options options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<rocksdb::SstFileWriter> sst_;  // opened by the first Put
};

}  // namespace cairn
