#include "common/snapshot/snapshot_records.h"

#include <cstdio>
#include <limits>

namespace cairn {

uint64_t ShardRecord::total_bytes() const {
  uint64_t total = 0;
  for (uint64_t bytes : part_bytes) total += bytes;
  return total;
}

uint64_t SparseRecord::total_bytes() const {
  uint64_t total = 0;
  for (uint64_t bytes : part_bytes) total += bytes;
  return total;
}

namespace dbformat {

// ---- Records ----


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

struct SparseRecordCodec {
  SparseRecord* record;

  template <class A> void save(A& ar) const {
    const SparseRecord& r = *record;
    ar(r.spec, r.optimizer);
    ar(cereal::make_size_tag(static_cast<cereal::size_type>(r.slot_defs.size())));
    for (const SlotDef& def : r.slot_defs) ar(def.name, def.scalar, def.initial);
    ar(r.step, r.rows, r.chunk_bytes, r.part_bytes, r.chunk_xxh3);
  }
  template <class A> void load(A& ar) {
    SparseRecord& r = *record;
    ar(r.spec, r.optimizer);
    r.slot_defs.resize(LoadCount(ar, kMaxSlots, "slot"));
    for (SlotDef& def : r.slot_defs) {
      LoadString(ar, def.name, wire::kMaxName, "slot name");
      LoadBool(ar, def.scalar, "slot scalar");
      ar(def.initial);
    }
    ar(r.step, r.rows, r.chunk_bytes);
    LoadVector(ar, r.part_bytes, kMaxSlots + 2, "part");
    r.chunk_xxh3.resize(LoadCount(ar, kMaxSlots + 2, "checksummed part"));
    for (auto& sums : r.chunk_xxh3) LoadVector(ar, sums, std::numeric_limits<size_t>::max(), "chunk checksum");
  }
};

std::string EncodeSparseRecord(const SparseRecord& record) {
  return EncodeMessage(SparseRecordCodec{const_cast<SparseRecord*>(&record)});
}

// Bytes of part `part` of a sparse table of `rows` rows: ids, values, slots.
uint64_t SparsePartBytes(const SparseTableSpec& spec, const std::vector<SlotDef>& slot_defs, int64_t rows,
                         size_t part) {
  const uint64_t n = static_cast<uint64_t>(rows);
  if (part == 0) return n * sizeof(int64_t);
  if (part == 1) return n * static_cast<uint64_t>(spec.dim) * sizeof(float);
  return n * static_cast<uint64_t>(SparseSlotWidth(slot_defs[part - 2], spec.dim)) * sizeof(float);
}


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

// Each part is as long as `expected(part)` says (`needs` begins the
// message's account of why) and has one checksum per chunk.
template <typename Expected>
Status CheckParts(const std::string& where, const std::vector<uint64_t>& part_bytes,
                  const std::vector<std::vector<uint64_t>>& chunk_xxh3, uint64_t chunk_bytes, const std::string& needs,
                  Expected expected) {
  for (size_t p = 0; p < part_bytes.size(); ++p) {
    const uint64_t want = expected(p);
    if (part_bytes[p] != want) {
      return InvalidArgument(where + "part " + std::to_string(p) + " is " + std::to_string(part_bytes[p]) +
                             " bytes, " + needs + std::to_string(want));
    }
    if (chunk_xxh3[p].size() != ChunkCount(part_bytes[p], chunk_bytes)) {
      return InvalidArgument(where + "part " + std::to_string(p) + " has " + std::to_string(chunk_xxh3[p].size()) +
                             " chunk checksums");
    }
  }
  return Status::OK();
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
  return CheckParts(where, r.part_bytes, r.chunk_xxh3, r.chunk_bytes, "its shape needs ", [&](size_t p) {
    return LayoutOf(r.info, r.slot_defs, static_cast<int>(p)).bytes();
  });
}

Status DecodeRecord(std::string_view bytes, ShardRecord* record) {
  RecordCodec codec{record};
  RETURN_IF_ERROR(DecodeMessage(bytes, &codec, "shard record"));
  return CheckRecord(*record);
}

// Everything a reader of a sparse record relies on.
Status CheckSparseRecord(const SparseRecord& r) {
  const std::string where = "sparse table '" + r.spec.name + "': ";
  Status s = ValidateSparseSpec(r.spec);
  if (!s.ok()) return InvalidArgument(s.message());
  if (r.chunk_bytes == 0) return InvalidArgument(where + "chunk_bytes is 0");
  if (r.rows < 0 || static_cast<uint64_t>(r.rows) > kMaxPartBytes / sizeof(float) / static_cast<uint64_t>(r.spec.dim)) {
    return InvalidArgument(where + std::to_string(r.rows) + " rows");
  }
  const size_t parts = 2 + r.slot_defs.size();
  if (r.part_bytes.size() != parts || r.chunk_xxh3.size() != parts) {
    return InvalidArgument(where + "expected " + std::to_string(parts) + " parts");
  }
  return CheckParts(where, r.part_bytes, r.chunk_xxh3, r.chunk_bytes, std::to_string(r.rows) + " rows need ",
                    [&](size_t p) { return SparsePartBytes(r.spec, r.slot_defs, r.rows, p); });
}

Status DecodeSparseRecord(std::string_view bytes, SparseRecord* record) {
  SparseRecordCodec codec{record};
  RETURN_IF_ERROR(DecodeMessage(bytes, &codec, "sparse table record"));
  return CheckSparseRecord(*record);
}

std::string ChunkKey(const std::string& shard, size_t part, uint64_t chunk, const char* prefix) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "/%04zu/%08llu", part, static_cast<unsigned long long>(chunk));
  return prefix + shard + suffix;
}

// Above every chunk key of the part ('0' follows the '/' before the chunk number).
std::string PartEndKey(const std::string& shard, size_t part, const char* prefix) {
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "/%04zu0", part);
  return prefix + shard + suffix;
}

}  // namespace dbformat
}  // namespace cairn
