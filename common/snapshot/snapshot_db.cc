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
#include "common/file_io.h"
#include "common/wire_archive.h"

namespace cairn {

uint64_t ShardRecord::total_bytes() const {
  uint64_t total = 0;
  for (uint64_t bytes : part_bytes) total += bytes;
  return total;
}

namespace {

constexpr char kDoneKey[] = "done";
constexpr char kMetaPrefix[] = "meta/";
constexpr char kDataPrefix[] = "data/";
constexpr size_t kMaxSlots = 64;
constexpr uint64_t kMaxPartBytes = uint64_t{1} << 48;

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- Errors and files ----



// Makes the entries of `dir` (a new database, a new file in it) durable.

// ---- Records ----

struct DoneRecord {
  int64_t step = 0;
  uint64_t shards = 0;
  uint64_t bytes = 0;
  template <class A> void serialize(A& ar) { ar(step, shards, bytes); }
};

// Cereal sees a ShardRecord through this wrapper, so the header carries no
// Cereal code. Loads are bounded (wire_archive.h): a corrupted count is an
// error, never a huge allocation.
struct RecordCodec {
  ShardRecord* record;

  template <class A> void save(A& ar) const {
    const ShardRecord& r = *record;
    ar(r.info.spec, r.info.row_begin, r.info.row_end, r.optimizer);
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(r.slot_defs.size())));
    for (const SlotDef& def : r.slot_defs) ar(def.name, def.scalar, def.initial);
    ar(r.step, r.chunk_bytes, r.part_bytes, r.chunk_xxh3);
  }
  template <class A> void load(A& ar) {
    ShardRecord& r = *record;
    ar(r.info.spec, r.info.row_begin, r.info.row_end, r.optimizer);
    r.slot_defs.resize(LoadCount(ar, kMaxSlots, "slot"));
    for (SlotDef& def : r.slot_defs) {
      LoadString(ar, def.name, wire::kMaxName, "slot name");
      LoadBool(ar, def.scalar, "slot scalar");
      ar(def.initial);
    }
    ar(r.step, r.chunk_bytes);
    LoadVector(ar, r.part_bytes, kMaxSlots + 1, "part");
    r.chunk_xxh3.resize(LoadCount(ar, kMaxSlots + 1, "checksummed part"));
    // LoadVector grows only as checksums actually arrive: the bound is the record's length.
    for (auto& sums : r.chunk_xxh3) LoadVector(ar, sums, std::numeric_limits<size_t>::max(), "chunk checksum");
  }
};

std::string EncodeRecord(const ShardRecord& record) {
  return EncodeMessage(RecordCodec{const_cast<ShardRecord*>(&record)});
}

// What part `part` of a shard looks like in memory.
struct PartLayout {
  DType dtype = DType::kFloat32;
  Shape shape;
  bool scalar_slot = false;  // one value per shard: read only as a whole
  uint64_t row_bytes = 0;

  uint64_t bytes() const { return static_cast<uint64_t>(NumElements(shape)) * DTypeSize(dtype); }
};

// Precondition: 0 <= part <= slot_defs.size() and a valid spec.
PartLayout LayoutOf(const ShardInfo& info, const std::vector<SlotDef>& slot_defs, int part) {
  PartLayout layout;
  if (part > 0 && slot_defs[part - 1].scalar) {
    layout.shape = {1};
    layout.scalar_slot = true;
    layout.row_bytes = layout.bytes();
    return layout;
  }
  layout.dtype = part == 0 ? info.spec.dtype : DType::kFloat32;  // slots are always float32
  layout.shape = info.shape();
  const int64_t rows = info.spec.rows();
  layout.row_bytes = rows == 0 ? 0 : static_cast<uint64_t>(info.spec.num_elements() / rows) * DTypeSize(layout.dtype);
  return layout;
}

// Precondition: chunk_bytes > 0.
uint64_t ChunkCount(uint64_t part_bytes, uint64_t chunk_bytes) {
  return part_bytes == 0 ? 0 : (part_bytes - 1) / chunk_bytes + 1;
}

// What LayoutOf relies on.
Status CheckInfo(const ShardInfo& info) {
  const VariableSpec& spec = info.spec;
  Status s = ValidateShape(spec.shape, spec.dtype, kMaxPartBytes);
  if (!s.ok()) return InvalidArgument("shard '" + spec.name + "': " + s.message());
  if (info.row_begin < 0 || info.row_begin > info.row_end || info.row_end > spec.rows()) {
    return InvalidArgument("shard '" + spec.name + "': rows [" + std::to_string(info.row_begin) + ", " +
                           std::to_string(info.row_end) + ") outside its " + std::to_string(spec.rows()) + " rows");
  }
  return Status::OK();
}

// Everything a reader relies on, checked once when the record is loaded.
Status CheckRecord(const ShardRecord& r) {
  RETURN_IF_ERROR(CheckInfo(r.info));
  const std::string where = "shard '" + r.info.spec.name + "': ";
  if (r.chunk_bytes == 0) return InvalidArgument(where + "chunk_bytes is 0");
  const size_t parts = 1 + r.slot_defs.size();
  if (r.part_bytes.size() != parts || r.chunk_xxh3.size() != parts) {
    return InvalidArgument(where + "expected " + std::to_string(parts) + " parts");
  }
  for (size_t p = 0; p < parts; ++p) {
    const uint64_t expected = LayoutOf(r.info, r.slot_defs, static_cast<int>(p)).bytes();
    if (r.part_bytes[p] != expected) {
      return InvalidArgument(where + "part " + std::to_string(p) + " is " + std::to_string(r.part_bytes[p]) +
                             " bytes, its shape needs " + std::to_string(expected));
    }
    if (r.chunk_xxh3[p].size() != ChunkCount(r.part_bytes[p], r.chunk_bytes)) {
      return InvalidArgument(where + "part " + std::to_string(p) + " has " + std::to_string(r.chunk_xxh3[p].size()) +
                             " chunk checksums");
    }
  }
  return Status::OK();
}

Status DecodeRecord(std::string_view bytes, ShardRecord* record) {
  RecordCodec codec{record};
  RETURN_IF_ERROR(DecodeMessage(bytes, &codec, "shard record"));
  return CheckRecord(*record);
}

std::string ChunkKey(const std::string& shard, size_t part, uint64_t chunk) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "/%04zu/%08llu", part, static_cast<unsigned long long>(chunk));
  return kDataPrefix + shard + suffix;
}

// Above every chunk key of the part ('0' follows the '/' before the chunk number).
std::string PartEndKey(const std::string& shard, size_t part) {
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "/%04zu0", part);
  return kDataPrefix + shard + suffix;
}

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

}  // namespace

Status WriteServerSnapshot(const std::string& db_path, int64_t step, const std::vector<ShardCopy>& shards,
                           const SnapshotWriteOptions& options, SnapshotIoStats* stats) {
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
  RETURN_IF_ERROR(writer->Commit(kDoneKey, EncodeMessage(done)));
  if (stats) *stats = {done.bytes, SecondsSince(start)};
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

 private:
  RocksSnapshotDb(const std::string& path, std::unique_ptr<rocksdb::DB> db) : path_(path), db_(std::move(db)) {}
  Status LoadRecords();
  StatusOr<const ShardRecord*> FindPart(const std::string& shard, int part) const;
  // Copies bytes [begin, begin + size) of the part to `out`.
  Status ReadBytes(const ShardRecord& record, int part, uint64_t begin, uint64_t size, char* out);
  Status PartLoss(const ShardRecord& record, int part, const std::string& what) const;

  // Constant after Open.
  const std::string path_;
  const std::unique_ptr<rocksdb::DB> db_;
  int64_t step_ = 0;
  std::vector<ShardRecord> shards_;  // sorted by name
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
  return Status::OK();
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

Status RocksSnapshotDb::PartLoss(const ShardRecord& record, int part, const std::string& what) const {
  return DataLoss("snapshot database '" + path_ + "', shard '" + record.info.spec.name + "' part " +
                  std::to_string(part) + ": " + what);
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
  if (size == 0) return Status::OK();
  const std::string& name = record.info.spec.name;
  const uint64_t part_bytes = record.part_bytes[part];
  const uint64_t first = begin / record.chunk_bytes, last = (begin + size - 1) / record.chunk_bytes;
  const std::string upper = PartEndKey(name, part);
  rocksdb::ReadOptions read = ChunkReadOptions();
  rocksdb::Slice upper_slice(upper);
  read.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (uint64_t c = first; c <= last; ++c) {
    const std::string key = ChunkKey(name, part, c);
    if (c == first) {
      it->Seek(key);
    } else {
      it->Next();
      // Keys of a shard whose name extends this one's may sort in between.
      if (it->Valid() && it->key() != key) it->Seek(key);
    }
    if (!it->status().ok()) return FromRocks(it->status(), "snapshot database '" + path_ + "': reading " + key);
    if (!it->Valid() || it->key() != key) return PartLoss(record, part, "chunk " + std::to_string(c) + " is missing");
    const uint64_t chunk_begin = c * record.chunk_bytes;
    const uint64_t expected = std::min(record.chunk_bytes, part_bytes - chunk_begin);
    const rocksdb::Slice value = it->value();
    if (value.size() != expected) {
      return PartLoss(record, part, "chunk " + std::to_string(c) + " is " + std::to_string(value.size()) +
                                        " bytes, expected " + std::to_string(expected));
    }
    const uint64_t from = std::max(begin, chunk_begin) - chunk_begin;
    const uint64_t to = std::min(begin + size, chunk_begin + expected) - chunk_begin;
    if (HashAndCopy(value, from, to, out + (chunk_begin + from - begin)) != record.chunk_xxh3[part][c]) {
      return PartLoss(record, part, "chunk " + std::to_string(c) + " fails its checksum");
    }
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<SnapshotDb>> OpenSnapshotDb(const std::string& db_path) {
  return RocksSnapshotDb::Open(db_path);
}

}  // namespace cairn
