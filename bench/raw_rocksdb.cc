#include "bench/raw_rocksdb.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>

#include "common/snapshot/rocks_db.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kRawPrefix[] = "raw/";

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string RawKey(uint64_t chunk) {
  char key[32];
  std::snprintf(key, sizeof key, "%s%016llx", kRawPrefix, static_cast<unsigned long long>(chunk));
  return key;
}

}  // namespace


Status MeasureRawRocksDb(const std::string& db_path, uint64_t bytes, uint64_t chunk_bytes, SnapshotIoStats* write,
                         SnapshotIoStats* read) {
  if (chunk_bytes == 0) return InvalidArgument("chunk_bytes must be positive");
  // Incompressible, non-zero bytes (splitmix64), made before the clock starts.
  std::unique_ptr<char[]> data(new char[bytes]);
  uint64_t x = 0x9e3779b97f4a7c15;
  for (uint64_t off = 0; off < bytes; off += 8) {
    uint64_t z = (x += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    z = (z ^ (z >> 31)) | 1;
    std::memcpy(data.get() + off, &z, std::min<uint64_t>(8, bytes - off));
  }
  const uint64_t chunks = (bytes + chunk_bytes - 1) / chunk_bytes;

  Clock::time_point start = Clock::now();
  {
    ASSIGN_OR_RETURN(std::unique_ptr<BulkWriter> writer, BulkWriter::Create(db_path));
    for (uint64_t c = 0; c < chunks; ++c) {
      const uint64_t offset = c * chunk_bytes;
      RETURN_IF_ERROR(writer->Put(RawKey(c), rocksdb::Slice(data.get() + offset, std::min(chunk_bytes, bytes - offset))));
    }
    RETURN_IF_ERROR(writer->Commit("done", "1"));
  }
  if (write) *write = {bytes, SecondsSince(start)};

  // Read into memory touched before the clock starts, so the baseline
  // measures RocksDB (the open and the reads), not first-touch page faults,
  // which cost more than the reads in a VM. A restore that reads into fresh
  // buffers is thereby judged against the best it could do.
  std::unique_ptr<char[]> back(new char[bytes]);
  std::memset(back.get(), 0, bytes);
  start = Clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::DB> db, OpenReadOnly(db_path));
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ChunkReadOptions()));
  uint64_t got = 0;
  for (it->Seek(kRawPrefix); it->Valid() && it->key().starts_with(kRawPrefix); it->Next()) {
    const rocksdb::Slice value = it->value();
    if (value.size() > bytes - got) break;
    std::memcpy(back.get() + got, value.data(), value.size());
    got += value.size();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading '" + db_path + "'");
  if (read) *read = {bytes, SecondsSince(start)};
  if (got != bytes || std::memcmp(back.get(), data.get(), bytes) != 0) {
    return DataLoss("'" + db_path + "' did not read back the " + std::to_string(bytes) + " bytes written");
  }
  return Status::OK();
}

}  // namespace cairn
