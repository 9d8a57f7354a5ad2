// The records and keys of a snapshot database (snapshot_db.h): their
// codecs, the checks every record passes before it is trusted, the layout
// of a shard's parts and the chunk keys. Internal to common/snapshot/: the
// writer and the reader in snapshot_db.cc share these.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/snapshot/snapshot_db.h"
#include "common/status.h"
#include "common/wire_archive.h"

namespace cairn::dbformat {

inline constexpr char kDoneKey[] = "done";
inline constexpr char kMetaPrefix[] = "meta/";
inline constexpr char kDataPrefix[] = "data/";
inline constexpr char kSparsePrefix[] = "sparse/";
inline constexpr char kSparseDataPrefix[] = "sdata/";
inline constexpr size_t kMaxSlots = 64;
inline constexpr uint64_t kMaxPartBytes = uint64_t{1} << 48;

struct DoneRecord {
  int64_t step = 0;
  uint64_t shards = 0;
  uint64_t bytes = 0;
  template <class A> void serialize(A& ar) { ar(step, shards, bytes); }
};

// What part `part` of a shard looks like in memory.
struct PartLayout {
  DType dtype = DType::kFloat32;
  Shape shape;
  bool scalar_slot = false;  // one value per shard: read only as a whole
  uint64_t row_bytes = 0;

  uint64_t bytes() const { return static_cast<uint64_t>(NumElements(shape)) * DTypeSize(dtype); }
};

std::string EncodeRecord(const ShardRecord& record);
Status DecodeRecord(std::string_view bytes, ShardRecord* record);  // checked (CheckRecord)
std::string EncodeSparseRecord(const SparseRecord& record);
Status DecodeSparseRecord(std::string_view bytes, SparseRecord* record);  // checked (CheckSparseRecord)
Status CheckInfo(const ShardInfo& info);
Status CheckRecord(const ShardRecord& r);
Status CheckSparseRecord(const SparseRecord& r);

// Bytes of part `part` of a sparse table of `rows` rows: ids, values, slots.
uint64_t SparsePartBytes(const SparseTableSpec& spec, const std::vector<SlotDef>& slot_defs, int64_t rows,
                         size_t part);
// Precondition: 0 <= part <= slot_defs.size() and a valid spec.
PartLayout LayoutOf(const ShardInfo& info, const std::vector<SlotDef>& slot_defs, int part);
// Precondition: chunk_bytes > 0.
uint64_t ChunkCount(uint64_t part_bytes, uint64_t chunk_bytes);
std::string ChunkKey(const std::string& shard, size_t part, uint64_t chunk, const char* prefix = kDataPrefix);
// Above every chunk key of the part ('0' follows the '/' before the chunk number).
std::string PartEndKey(const std::string& shard, size_t part, const char* prefix = kDataPrefix);

}  // namespace cairn::dbformat
