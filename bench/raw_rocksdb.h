// The raw RocksDB baseline of `cairn bench snapshot`: the same bytes
// written and read through RocksDB with the snapshot database's options and
// durability (common/snapshot/rocks_db.h), but without records, checksums
// or copies.
#pragma once

#include <cstdint>
#include <string>

#include "common/snapshot/snapshot_db.h"
#include "common/status.h"

namespace cairn {

// Writes `bytes` in `chunk_bytes` values into a new database at `db_path`,
// synced, then reads them back into touched memory and checks them.
Status MeasureRawRocksDb(const std::string& db_path, uint64_t bytes, uint64_t chunk_bytes, SnapshotIoStats* write,
                         SnapshotIoStats* read);

}  // namespace cairn
