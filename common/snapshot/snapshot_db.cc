#include "common/snapshot/snapshot_db.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>

#include <xxhash.h>
// libxxhash's runtime-dispatched (AVX2 where the CPU has it) XXH3, as in frame.cc.
#include <xxh_x86dispatch.h>

#include "common/snapshot/rocks_db.h"
#include "common/snapshot/snapshot_records.h"
#include "common/file_io.h"
#include "common/wire_archive.h"

namespace cairn {

namespace {


using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- Errors and files ----



// Makes the entries of `dir` (a new database, a new file in it) durable.

using namespace dbformat;  // the records and keys (snapshot_records.h)

// ---- Writing ----

// One chunk of one part, in the order the table needs.
struct Chunk {
  std::string key;
  const char* data = nullptr;
  uint64_t size = 0;
  uint64_t* xxh3 = nullptr;  // where its checksum goes
};

Status CheckPart(const ShardInfo& info, const std::vector<SlotDef>& slot_defs, int part, const Tensor& t) {
  const PartLayout layout = LayoutOf(info, slot_defs, part);
  if (t.dtype() == layout.dtype && t.shape() == layout.shape) return Status::OK();
  return InvalidArgument("shard '" + info.spec.name + "' part " + std::to_string(part) + " is " +
                         DTypeName(t.dtype()) + ShapeString(t.shape()) + ", expected " + DTypeName(layout.dtype) +
                         ShapeString(layout.shape));
}

// The record of one shard, checksums still empty; InvalidArgument if the
// copy does not match its spec or could not be read back.
StatusOr<ShardRecord> PlanRecord(int64_t step, const ShardCopy& copy, uint64_t chunk_bytes) {
  ShardRecord record;
  record.info = copy.info;
  record.optimizer = copy.optimizer;
  record.slot_defs = copy.slot_defs;
  record.step = step;
  record.chunk_bytes = chunk_bytes;
  RETURN_IF_ERROR(CheckInfo(copy.info));
  if (copy.slots.size() != copy.slot_defs.size()) {
    return InvalidArgument("shard '" + copy.info.spec.name + "' has " + std::to_string(copy.slots.size()) +
                           " slots for " + std::to_string(copy.slot_defs.size()) + " slot definitions");
  }
  for (size_t p = 0; p <= copy.slots.size(); ++p) {
    const Tensor& t = p == 0 ? copy.values : copy.slots[p - 1];
    RETURN_IF_ERROR(CheckPart(copy.info, copy.slot_defs, static_cast<int>(p), t));
    record.part_bytes.push_back(t.byte_size());
    record.chunk_xxh3.emplace_back(ChunkCount(t.byte_size(), chunk_bytes));
  }
  // Whatever is written must load again (bounded names, counts, dtypes).
  ShardRecord decoded;
  const Status s = DecodeRecord(EncodeRecord(record), &decoded);
  if (!s.ok()) return InvalidArgument("shard '" + copy.info.spec.name + "' cannot be saved: " + s.message());
  return record;
}

// The chunks of every part of every shard, sorted by key.
std::vector<Chunk> ListChunks(const std::vector<ShardCopy>& shards, std::vector<ShardRecord>& records) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < shards.size(); ++i) {
    ShardRecord& record = records[i];
    for (size_t p = 0; p < record.part_bytes.size(); ++p) {
      const Tensor& t = p == 0 ? shards[i].values : shards[i].slots[p - 1];
      const char* base = static_cast<const char*>(t.raw());
      for (uint64_t c = 0; c < record.chunk_xxh3[p].size(); ++c) {
        const uint64_t offset = c * record.chunk_bytes;
        chunks.push_back({ChunkKey(record.info.spec.name, p, c), base + offset,
                          std::min(record.chunk_bytes, record.part_bytes[p] - offset), &record.chunk_xxh3[p][c]});
      }
    }
  }
  std::sort(chunks.begin(), chunks.end(), [](const Chunk& a, const Chunk& b) { return a.key < b.key; });
  return chunks;
}

// The record of one sparse table's part, checksums still empty, and its
// parts' bytes in part order.
StatusOr<SparseRecord> PlanSparseRecord(int64_t step, const SparseCopy& copy, uint64_t chunk_bytes,
                                        std::vector<std::pair<const char*, uint64_t>>* parts) {
  const SparseRows& rows = copy.rows;
  const std::string where = "sparse table '" + copy.spec.name + "'";
  SparseRecord record;
  record.spec = copy.spec;
  record.optimizer = copy.optimizer;
  record.slot_defs = copy.slot_defs;
  record.step = step;
  record.rows = static_cast<int64_t>(rows.ids.size());
  record.chunk_bytes = chunk_bytes;
  if (rows.dim != copy.spec.dim) return InvalidArgument(where + ": rows of dim " + std::to_string(rows.dim));
  if (rows.slots.size() != copy.slot_defs.size()) {
    return InvalidArgument(where + " has " + std::to_string(rows.slots.size()) + " slots for " +
                           std::to_string(copy.slot_defs.size()) + " slot definitions");
  }
  if (!std::is_sorted(rows.ids.begin(), rows.ids.end()) ||
      std::adjacent_find(rows.ids.begin(), rows.ids.end()) != rows.ids.end()) {
    return InvalidArgument(where + ": ids are not sorted and unique");
  }
  parts->clear();
  parts->emplace_back(reinterpret_cast<const char*>(rows.ids.data()), rows.ids.size() * sizeof(int64_t));
  parts->emplace_back(reinterpret_cast<const char*>(rows.values.data()), rows.values.size() * sizeof(float));
  for (const std::vector<float>& slot : rows.slots) {
    parts->emplace_back(reinterpret_cast<const char*>(slot.data()), slot.size() * sizeof(float));
  }
  for (size_t p = 0; p < parts->size(); ++p) {
    if ((*parts)[p].second != SparsePartBytes(copy.spec, copy.slot_defs, record.rows, p)) {
      return InvalidArgument(where + ": part " + std::to_string(p) + " does not match its " +
                             std::to_string(record.rows) + " ids");
    }
    record.part_bytes.push_back((*parts)[p].second);
    record.chunk_xxh3.emplace_back(ChunkCount((*parts)[p].second, chunk_bytes));
  }
  SparseRecord decoded;
  const Status s = DecodeSparseRecord(EncodeSparseRecord(record), &decoded);
  if (!s.ok()) return InvalidArgument(where + " cannot be saved: " + s.message());
  return record;
}

// Writes the sparse tables' chunks and then their records (keys after every
// dense key but "done": "sdata/..." < "sparse/...").
Status WriteSparse(BulkWriter& writer, int64_t step, const std::vector<SparseCopy>& sparse, uint64_t chunk_bytes,
                   uint64_t* bytes) {
  std::vector<const SparseCopy*> by_name;
  for (const SparseCopy& c : sparse) by_name.push_back(&c);
  std::sort(by_name.begin(), by_name.end(),
            [](const SparseCopy* a, const SparseCopy* b) { return a->spec.name < b->spec.name; });
  std::vector<SparseRecord> records;
  std::vector<std::vector<std::pair<const char*, uint64_t>>> parts(by_name.size());
  for (size_t i = 0; i < by_name.size(); ++i) {
    if (i > 0 && by_name[i]->spec.name == by_name[i - 1]->spec.name) {
      return InvalidArgument("sparse table '" + by_name[i]->spec.name + "' appears twice");
    }
    ASSIGN_OR_RETURN(SparseRecord record, PlanSparseRecord(step, *by_name[i], chunk_bytes, &parts[i]));
    records.push_back(std::move(record));
  }
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < records.size(); ++i) {
    SparseRecord& record = records[i];
    for (size_t p = 0; p < parts[i].size(); ++p) {
      for (uint64_t c = 0; c < record.chunk_xxh3[p].size(); ++c) {
        const uint64_t offset = c * chunk_bytes;
        chunks.push_back({ChunkKey(record.spec.name, p, c, kSparseDataPrefix), parts[i][p].first + offset,
                          std::min(chunk_bytes, record.part_bytes[p] - offset), &record.chunk_xxh3[p][c]});
      }
    }
  }
  std::sort(chunks.begin(), chunks.end(), [](const Chunk& a, const Chunk& b) { return a.key < b.key; });
  for (const Chunk& chunk : chunks) {
    *chunk.xxh3 = XXH3_64bits(chunk.data, chunk.size);
    RETURN_IF_ERROR(writer.Put(chunk.key, rocksdb::Slice(chunk.data, chunk.size)));
  }
  for (const SparseRecord& record : records) {
    RETURN_IF_ERROR(writer.Put(kSparsePrefix + record.spec.name, EncodeSparseRecord(record)));
    *bytes += record.total_bytes();
  }
  return Status::OK();
}

}  // namespace

Status WriteServerSnapshot(const std::string& db_path, int64_t step, const std::vector<ShardCopy>& shards,
                           const SnapshotWriteOptions& options, SnapshotIoStats* stats) {
  return WriteServerSnapshot(db_path, step, shards, {}, options, stats);
}

Status WriteServerSnapshot(const std::string& db_path, int64_t step, const std::vector<ShardCopy>& shards,
                           const std::vector<SparseCopy>& sparse, const SnapshotWriteOptions& options,
                           SnapshotIoStats* stats) {
  const Clock::time_point start = Clock::now();
  if (options.chunk_bytes == 0) return InvalidArgument("chunk_bytes must be positive");
  std::vector<ShardRecord> records;
  for (const ShardCopy& copy : shards) {
    ASSIGN_OR_RETURN(ShardRecord record, PlanRecord(step, copy, options.chunk_bytes));
    records.push_back(std::move(record));
  }
  std::vector<const ShardRecord*> by_name;
  for (const ShardRecord& r : records) by_name.push_back(&r);
  std::sort(by_name.begin(), by_name.end(),
            [](const ShardRecord* a, const ShardRecord* b) { return a->info.spec.name < b->info.spec.name; });
  for (size_t i = 1; i < by_name.size(); ++i) {
    if (by_name[i]->info.spec.name == by_name[i - 1]->info.spec.name) {
      return InvalidArgument("shard '" + by_name[i]->info.spec.name + "' appears twice");
    }
  }

  ASSIGN_OR_RETURN(std::unique_ptr<BulkWriter> writer, BulkWriter::Create(db_path, options.env));
  // Keys sort as "data/..." < "done" < "meta/...": chunks first, then the
  // records holding their checksums; "done" follows in a later write.
  for (const Chunk& chunk : ListChunks(shards, records)) {
    *chunk.xxh3 = XXH3_64bits(chunk.data, chunk.size);
    RETURN_IF_ERROR(writer->Put(chunk.key, rocksdb::Slice(chunk.data, chunk.size)));
  }
  DoneRecord done{step, records.size(), 0};
  for (const ShardRecord* record : by_name) {
    RETURN_IF_ERROR(writer->Put(kMetaPrefix + record->info.spec.name, EncodeRecord(*record)));
    done.bytes += record->total_bytes();
  }
  // The done record counts the dense shards only, as before sparse tables:
  // each sparse record is checked against the manifest's row counts instead.
  uint64_t sparse_bytes = 0;
  RETURN_IF_ERROR(WriteSparse(*writer, step, sparse, options.chunk_bytes, &sparse_bytes));
  RETURN_IF_ERROR(writer->Commit(kDoneKey, EncodeMessage(done)));
  if (stats) *stats = {done.bytes + sparse_bytes, SecondsSince(start)};
  return Status::OK();
}

// ---- Reading ----

namespace {

// Hashes all of `chunk` and copies its bytes [from, to) to `out`. One pass
// each, not interleaved in cache-sized pieces: a large memcpy writes with
// non-temporal stores, which measured faster here (restore of 288 MiB: 5.7-6.7
// GB/s against 5.0-5.5 GB/s with 128 KiB pieces, bench snapshot).
uint64_t HashAndCopy(const rocksdb::Slice& chunk, uint64_t from, uint64_t to, char* out) {
  const uint64_t hash = XXH3_64bits(chunk.data(), chunk.size());
  if (from < to) std::memcpy(out, chunk.data() + from, to - from);
  return hash;
}

class RocksSnapshotDb final : public SnapshotDb {
 public:
  static StatusOr<std::unique_ptr<SnapshotDb>> Open(const std::string& db_path);

  int64_t step() const override { return step_; }
  const std::vector<ShardRecord>& shards() const override { return shards_; }
  const ShardRecord* Find(const std::string& shard) const override;
  Status ReadRows(const std::string& shard, int part, int64_t row_begin, int64_t row_end, void* out,
                  uint64_t out_bytes) override;
  StatusOr<Tensor> ReadPart(const std::string& shard, int part) override;
  const std::vector<SparseRecord>& sparse_tables() const override { return sparse_; }
  const SparseRecord* FindSparse(const std::string& table) const override;
  StatusOr<SparseCopy> ReadSparse(const std::string& table) override;

 private:
  // One part's chunks: where they are and what they must hash to.
  struct PartChunks {
    const char* prefix;
    const std::string& name;
    int part;
    uint64_t chunk_bytes;
    uint64_t part_bytes;
    const std::vector<uint64_t>& xxh3;
    std::string what;  // "shard 'w'" or "sparse table 'emb'", for errors
  };
  Status LoadSparseRecords();
  Status ReadChunks(const PartChunks& p, uint64_t begin, uint64_t size, char* out);
  RocksSnapshotDb(const std::string& path, std::unique_ptr<rocksdb::DB> db) : path_(path), db_(std::move(db)) {}
  Status LoadRecords();
  StatusOr<const ShardRecord*> FindPart(const std::string& shard, int part) const;
  // Copies bytes [begin, begin + size) of the part to `out`.
  Status ReadBytes(const ShardRecord& record, int part, uint64_t begin, uint64_t size, char* out);

  // Constant after Open.
  const std::string path_;
  const std::unique_ptr<rocksdb::DB> db_;
  int64_t step_ = 0;
  std::vector<ShardRecord> shards_;  // sorted by name
  std::vector<SparseRecord> sparse_;  // sorted by name
};

StatusOr<std::unique_ptr<SnapshotDb>> RocksSnapshotDb::Open(const std::string& db_path) {
  ASSIGN_OR_RETURN(std::unique_ptr<rocksdb::DB> db, OpenReadOnly(db_path));
  std::unique_ptr<RocksSnapshotDb> snapshot(new RocksSnapshotDb(db_path, std::move(db)));
  RETURN_IF_ERROR(snapshot->LoadRecords());
  return std::unique_ptr<SnapshotDb>(std::move(snapshot));
}

Status RocksSnapshotDb::LoadRecords() {
  const std::string where = "snapshot database '" + path_ + "'";
  std::string value;
  rocksdb::Status s = db_->Get(RecordReadOptions(), kDoneKey, &value);
  if (s.IsNotFound()) return DataLoss(where + " is incomplete: it has no done record");
  if (!s.ok()) return FromRocks(s, where + ": cannot read the done record");
  DoneRecord done;
  Status decoded = DecodeMessage(value, &done, "done record");
  if (!decoded.ok()) return DataLoss(where + ": " + decoded.message());
  step_ = done.step;

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(RecordReadOptions()));
  uint64_t bytes = 0;
  for (it->Seek(kMetaPrefix); it->Valid() && it->key().starts_with(kMetaPrefix); it->Next()) {
    const std::string name = it->key().ToString().substr(std::strlen(kMetaPrefix));
    ShardRecord record;
    decoded = DecodeRecord(it->value().ToStringView(), &record);
    if (!decoded.ok()) return DataLoss(where + ": record of shard '" + name + "': " + decoded.message());
    if (record.info.spec.name != name) {
      return DataLoss(where + ": record under '" + name + "' is of shard '" + record.info.spec.name + "'");
    }
    if (record.step != step_) {
      return DataLoss(where + ": shard '" + name + "' was copied for step " + std::to_string(record.step) +
                      ", the database is of step " + std::to_string(step_));
    }
    bytes += record.total_bytes();
    shards_.push_back(std::move(record));
  }
  if (!it->status().ok()) return FromRocks(it->status(), where + ": cannot read the shard records");
  if (shards_.size() != done.shards || bytes != done.bytes) {
    return DataLoss(where + " holds " + std::to_string(shards_.size()) + " shards of " + std::to_string(bytes) +
                    " bytes, its done record says " + std::to_string(done.shards) + " of " +
                    std::to_string(done.bytes));
  }
  return LoadSparseRecords();
}

Status RocksSnapshotDb::LoadSparseRecords() {
  const std::string where = "snapshot database '" + path_ + "'";
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(RecordReadOptions()));
  for (it->Seek(kSparsePrefix); it->Valid() && it->key().starts_with(kSparsePrefix); it->Next()) {
    const std::string name = it->key().ToString().substr(std::strlen(kSparsePrefix));
    SparseRecord record;
    const Status decoded = DecodeSparseRecord(it->value().ToStringView(), &record);
    if (!decoded.ok()) return DataLoss(where + ": record of sparse table '" + name + "': " + decoded.message());
    if (record.spec.name != name || record.step != step_) {
      return DataLoss(where + ": the record under sparse table '" + name + "' is of '" + record.spec.name +
                      "' at step " + std::to_string(record.step));
    }
    sparse_.push_back(std::move(record));
  }
  if (!it->status().ok()) return FromRocks(it->status(), where + ": cannot read the sparse table records");
  return Status::OK();
}

const SparseRecord* RocksSnapshotDb::FindSparse(const std::string& table) const {
  auto it = std::lower_bound(sparse_.begin(), sparse_.end(), table,
                             [](const SparseRecord& r, const std::string& name) { return r.spec.name < name; });
  return it != sparse_.end() && it->spec.name == table ? &*it : nullptr;
}

StatusOr<SparseCopy> RocksSnapshotDb::ReadSparse(const std::string& table) {
  const SparseRecord* r = FindSparse(table);
  if (!r) return NotFound("snapshot database '" + path_ + "' has no sparse table '" + table + "'");
  SparseCopy copy;
  copy.spec = r->spec;
  copy.optimizer = r->optimizer;
  copy.slot_defs = r->slot_defs;
  SparseRows& rows = copy.rows;
  rows.dim = r->spec.dim;
  const size_t n = static_cast<size_t>(r->rows);
  rows.ids.resize(n);
  rows.values.resize(n * r->spec.dim);
  rows.slots.resize(r->slot_defs.size());
  for (size_t k = 0; k < rows.slots.size(); ++k) rows.slots[k].resize(n * SparseSlotWidth(r->slot_defs[k], rows.dim));
  const std::string what = "sparse table '" + table + "'";
  for (size_t p = 0; p < r->part_bytes.size(); ++p) {
    char* out = p == 0 ? reinterpret_cast<char*>(rows.ids.data())
                : p == 1 ? reinterpret_cast<char*>(rows.values.data())
                         : reinterpret_cast<char*>(rows.slots[p - 2].data());
    const PartChunks chunks{kSparseDataPrefix, r->spec.name, static_cast<int>(p), r->chunk_bytes, r->part_bytes[p],
                            r->chunk_xxh3[p], what};
    RETURN_IF_ERROR(ReadChunks(chunks, 0, r->part_bytes[p], out));
  }
  if (!std::is_sorted(rows.ids.begin(), rows.ids.end()) ||
      std::adjacent_find(rows.ids.begin(), rows.ids.end()) != rows.ids.end()) {
    return DataLoss("snapshot database '" + path_ + "', " + what + ": its ids are not sorted and unique");
  }
  return copy;
}

const ShardRecord* RocksSnapshotDb::Find(const std::string& shard) const {
  auto it = std::lower_bound(shards_.begin(), shards_.end(), shard,
                             [](const ShardRecord& r, const std::string& name) { return r.info.spec.name < name; });
  return it != shards_.end() && it->info.spec.name == shard ? &*it : nullptr;
}

StatusOr<const ShardRecord*> RocksSnapshotDb::FindPart(const std::string& shard, int part) const {
  const ShardRecord* record = Find(shard);
  if (!record) return NotFound("snapshot database '" + path_ + "' has no shard '" + shard + "'");
  if (part < 0 || static_cast<size_t>(part) >= record->part_bytes.size()) {
    return OutOfRange("shard '" + shard + "' has no part " + std::to_string(part) + " (it has " +
                      std::to_string(record->part_bytes.size()) + ")");
  }
  return record;
}

Status RocksSnapshotDb::ReadRows(const std::string& shard, int part, int64_t row_begin, int64_t row_end, void* out,
                                 uint64_t out_bytes) {
  ASSIGN_OR_RETURN(const ShardRecord* record, FindPart(shard, part));
  const PartLayout layout = LayoutOf(record->info, record->slot_defs, part);
  uint64_t begin = 0, size = record->part_bytes[part];
  if (layout.scalar_slot) {
    if (row_begin != 0 || row_end != 0) {
      return InvalidArgument("shard '" + shard + "' part " + std::to_string(part) +
                             " is a scalar slot: read it whole, with rows [0, 0)");
    }
  } else {
    const ShardInfo& info = record->info;
    if (row_begin < info.row_begin || row_begin > row_end || row_end > info.row_end) {
      return OutOfRange("rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                        ") are not inside shard '" + shard + "' rows [" + std::to_string(info.row_begin) + ", " +
                        std::to_string(info.row_end) + ")");
    }
    begin = static_cast<uint64_t>(row_begin - info.row_begin) * layout.row_bytes;
    size = static_cast<uint64_t>(row_end - row_begin) * layout.row_bytes;
  }
  if (out_bytes != size) {
    return InvalidArgument("reading shard '" + shard + "' part " + std::to_string(part) + " needs " +
                           std::to_string(size) + " bytes, the buffer has " + std::to_string(out_bytes));
  }
  return ReadBytes(*record, part, begin, size, static_cast<char*>(out));
}

StatusOr<Tensor> RocksSnapshotDb::ReadPart(const std::string& shard, int part) {
  ASSIGN_OR_RETURN(const ShardRecord* record, FindPart(shard, part));
  const PartLayout layout = LayoutOf(record->info, record->slot_defs, part);
  Tensor tensor = Tensor::Uninitialized(layout.dtype, layout.shape);
  RETURN_IF_ERROR(ReadBytes(*record, part, 0, tensor.byte_size(), static_cast<char*>(tensor.raw())));
  return tensor;
}

Status RocksSnapshotDb::ReadBytes(const ShardRecord& record, int part, uint64_t begin, uint64_t size, char* out) {
  const PartChunks chunks{kDataPrefix, record.info.spec.name, part, record.chunk_bytes, record.part_bytes[part],
                          record.chunk_xxh3[part], "shard '" + record.info.spec.name + "'"};
  return ReadChunks(chunks, begin, size, out);
}

Status RocksSnapshotDb::ReadChunks(const PartChunks& p, uint64_t begin, uint64_t size, char* out) {
  if (size == 0) return Status::OK();
  auto loss = [&](const std::string& what) {
    return DataLoss("snapshot database '" + path_ + "', " + p.what + " part " + std::to_string(p.part) + ": " + what);
  };
  const uint64_t first = begin / p.chunk_bytes, last = (begin + size - 1) / p.chunk_bytes;
  const std::string upper = PartEndKey(p.name, p.part, p.prefix);
  rocksdb::ReadOptions read = ChunkReadOptions();
  rocksdb::Slice upper_slice(upper);
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (uint64_t c = first; c <= last; ++c) {
    const std::string key = ChunkKey(p.name, p.part, c, p.prefix);
    if (c == first) {
      it->Seek(key);
    } else {
      it->Next();
      // Keys of a shard whose name extends this one's may sort in between.
      if (it->Valid() && it->key() != key) it->Seek(key);
    }
    if (!it->status().ok()) return FromRocks(it->status(), "snapshot database '" + path_ + "': reading " + key);
    if (!it->Valid() || it->key() != key) return loss("chunk " + std::to_string(c) + " is missing");
    const uint64_t chunk_begin = c * p.chunk_bytes;
    const uint64_t expected = std::min(p.chunk_bytes, p.part_bytes - chunk_begin);
    const rocksdb::Slice value = it->value();
    if (value.size() != expected) {
      return loss("chunk " + std::to_string(c) + " is " + std::to_string(value.size()) + " bytes, expected " +
                  std::to_string(expected));
    }
    const uint64_t from = std::max(begin, chunk_begin) - chunk_begin;
    const uint64_t to = std::min(begin + size, chunk_begin + expected) - chunk_begin;
    if (HashAndCopy(value, from, to, out + (chunk_begin + from - begin)) != p.xxh3[c]) {
      return loss("chunk " + std::to_string(c) + " fails its checksum");
    }
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<SnapshotDb>> OpenSnapshotDb(const std::string& db_path) {
  return RocksSnapshotDb::Open(db_path);
}

}  // namespace cairn
