#include "ps/sparse_table.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "common/parallel_for.h"
#include "ps/sparse_index.h"
#include "ps/sparse_repeats.h"

namespace cairn {
namespace {

constexpr uint32_t kRowsPerBlock = uint32_t{1} << 16;
constexpr uint32_t kNoRow = SparseIndex::kNoRow;

int64_t RecordId(const float* record) {
  int64_t id;
  std::memcpy(&id, record, sizeof(id));
  return id;
}

// The rows of `n` records of `stride` floats in increasing id order. A
// radix sort (four passes of 16 bits) of (id, row) pairs: the comparison
// sort of row numbers it replaced, each comparison two cache misses into
// the records, took ~6 s for 10M rows.
std::vector<uint32_t> OrderById(const float* records, uint32_t n, int32_t stride) {
  struct Key {
    uint64_t key;  // the id with its sign bit flipped: unsigned order is signed order
    uint32_t row;
  };
  std::vector<Key> keys(n), spare(n);
  for (uint32_t i = 0; i < n; ++i) {
    keys[i] = Key{static_cast<uint64_t>(RecordId(records + static_cast<size_t>(i) * stride)) ^ (uint64_t{1} << 63), i};
  }
  if (n < 4096) {
    std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) { return a.key < b.key; });
  } else {
    std::vector<uint32_t> count(uint32_t{1} << 16);
    for (int shift = 0; shift < 64; shift += 16) {
      std::fill(count.begin(), count.end(), 0);
      for (const Key& k : keys) ++count[(k.key >> shift) & 0xffff];
      uint32_t sum = 0;
      for (uint32_t& c : count) sum += std::exchange(c, sum);
      for (const Key& k : keys) spare[count[(k.key >> shift) & 0xffff]++] = k;
      keys.swap(spare);
    }
  }
  std::vector<uint32_t> order(n);
  for (uint32_t i = 0; i < n; ++i) order[i] = keys[i].row;
  return order;
}

// Copies n floats with fixed-size copies the compiler inlines: a row's
// update moves a few short runs (values, each slot, the gradient), and a
// call to memcpy for each took a sixth of a wide & deep step.
inline void CopyFloats(float* to, const float* from, int32_t n) {
  for (; n >= 16; n -= 16, to += 16, from += 16) std::memcpy(to, from, 16 * sizeof(float));
  for (; n >= 4; n -= 4, to += 4, from += 4) std::memcpy(to, from, 4 * sizeof(float));
  for (; n > 0; --n) *to++ = *from++;
}

}  // namespace

// A pending cut: the records as of CopyRecords, copied chunk by chunk by
// SortRecords, with the rows updates reached first saved aside.
class SparseTable::Cut {
 public:
  Cut(uint32_t rows, int32_t stride)
      : rows(rows),
        stride(stride),
        chunks((rows + kCutChunkRows - 1) / kCutChunkRows),
        buffer(new float[static_cast<size_t>(rows) * stride]),  // not touched here: the copier touches it
        copied(chunks, 0),
        saved((rows + 63) / 64, 0) {}

  const uint32_t rows;
  const int32_t stride;
  const uint32_t chunks;
  const std::unique_ptr<float[]> buffer;  // rows x stride floats, in creation order

  // Guarded by the table's mu_: written under it either way (a copier's
  // shared lock is exclusive among copiers through copy_mu), read by
  // updates under it exclusively.
  std::vector<uint8_t> copied;  // per chunk of kCutChunkRows rows
  std::vector<uint64_t> saved;  // per row: its record as of the cut is in the side log
  static constexpr uint32_t kLogRecords = 8192;
  std::vector<std::unique_ptr<float[]>> log;  // kLogRecords records each
  std::vector<uint32_t> log_rows;             // the row of each saved record

  std::mutex copy_mu;  // one copier at a time
  bool done = false;   // guarded by copy_mu: copied whole, side log applied

  // Whether an update of `row` must save its record first.
  bool MustSave(uint32_t row) const {
    return row < rows && !copied[row / kCutChunkRows] && !((saved[row / 64] >> (row % 64)) & 1);
  }
  void Save(uint32_t row, const float* record) {
    const size_t n = log_rows.size();
    if (n % kLogRecords == 0) log.emplace_back(new float[static_cast<size_t>(kLogRecords) * stride]);
    std::memcpy(log.back().get() + (n % kLogRecords) * static_cast<size_t>(stride), record, stride * sizeof(float));
    log_rows.push_back(row);
    saved[row / 64] |= uint64_t{1} << (row % 64);
  }
  // Writes the saved records over the copied ones: once every chunk is copied.
  void ApplyLog() {
    for (size_t i = 0; i < log_rows.size(); ++i) {
      std::memcpy(buffer.get() + static_cast<size_t>(log_rows[i]) * stride,
                  log[i / kLogRecords].get() + (i % kLogRecords) * static_cast<size_t>(stride), stride * sizeof(float));
    }
  }
  void FreeLog() {
    std::vector<std::unique_ptr<float[]>>().swap(log);
    std::vector<uint32_t>().swap(log_rows);
    std::vector<uint64_t>().swap(saved);
  }
};

// Visits `n` ids with the cache misses of random ids overlapped: while id i
// is visited, the index slot of id i + 2 * kAhead is on its way to the
// cache and id i + kAhead's row is located (`locate(id, candidate)`, which
// may create the row, prefetches its record and returns it). `visit(i,
// row)` runs for each id in order, with the row `locate` gave (a tag's
// candidate, unchecked) or kNoRow.
template <typename Locate, typename Visit>
void SparseTable::Pipelined(const int64_t* ids, size_t n, Locate locate, Visit visit) const {
  const SparseIndex& index = *index_;
  constexpr size_t kAhead = 16;
  uint32_t ring[kAhead];
  for (size_t i = 0; i < std::min(n, 2 * kAhead); ++i) index.Prefetch(ids[i]);
  for (size_t i = 0; i < std::min(n, kAhead); ++i) ring[i] = locate(ids[i], index.Candidate(ids[i]));
  for (size_t i = 0; i < n; ++i) {
    if (i + 2 * kAhead < n) index.Prefetch(ids[i + 2 * kAhead]);
    const uint32_t row = ring[i % kAhead];
    if (i + kAhead < n) ring[i % kAhead] = locate(ids[i + kAhead], index.Candidate(ids[i + kAhead]));
    visit(i, row);
  }
}

StatusOr<std::unique_ptr<SparseTable>> SparseTable::Create(const SparseTableSpec& spec,
                                                             const OptimizerSpec& optimizer) {
  RETURN_IF_ERROR(ValidateSparseSpec(spec));
  StatusOr<std::unique_ptr<Optimizer>> opt = Optimizer::Create(optimizer);
  if (!opt.ok()) return opt.status().WithContext("sparse table '" + spec.name + "'");
  return std::unique_ptr<SparseTable>(new SparseTable(spec, optimizer, std::move(*opt)));
}

SparseTable::SparseTable(SparseTableSpec spec, OptimizerSpec optimizer_spec, std::unique_ptr<Optimizer> optimizer)
    : spec_(std::move(spec)),
      optimizer_spec_(std::move(optimizer_spec)),
      optimizer_(std::move(optimizer)),
      index_(std::make_unique<SparseIndex>()) {
  int32_t at = 2 + spec_.dim;  // [id: 2 floats][values]
  for (size_t s = 0; s < slots().size(); ++s) {
    slot_offsets_.push_back(at);
    at += SlotWidth(s);
  }
  stride_ = (at + 1) & ~1;
  initial_record_.assign(stride_ - 2 - spec_.dim, 0.0f);
  for (size_t s = 0; s < slots().size(); ++s) {
    std::fill_n(initial_record_.begin() + (slot_offsets_[s] - 2 - spec_.dim), SlotWidth(s), slots()[s].initial);
  }
}

SparseTable::~SparseTable() = default;

std::string SparseTable::SlotName(size_t slot) const {
  return spec_.name + "/" + optimizer_->Name() + "/" + slots()[slot].name;
}

int32_t SparseTable::SlotWidth(size_t slot) const { return slots()[slot].scalar ? 1 : spec_.dim; }

// Every cache line of a record, or of its values.
void SparseTable::PrefetchRecord(const float* record) const {
  for (int32_t at = 0; at < stride_; at += 16) PrefetchLine(record + at);
  PrefetchLine(record + stride_ - 1);
}

void SparseTable::PrefetchValues(const float* record) const {
  for (int32_t at = 0; at < 2 + spec_.dim; at += 16) PrefetchLine(record + at);
  PrefetchLine(record + 1 + spec_.dim);
}

uint32_t SparseTable::IndexTag(int64_t id) { return SparseIndex::Tag(id); }

uint32_t SparseTable::FindRow(int64_t id) const {
  return index_->Find(id, [this](uint32_t row) { return RecordId(Record(row)); });
}

float* SparseTable::Record(uint32_t row) const {
  return blocks_[row / kRowsPerBlock].get() + static_cast<size_t>(row % kRowsPerBlock) * stride_;
}

uint32_t SparseTable::NewRow(int64_t id) {
  const uint32_t row = rows_;
  if (row % kRowsPerBlock == 0) {
    // Not zero-filled: a record's memory is touched when its row is created.
    blocks_.emplace_back(new float[static_cast<size_t>(kRowsPerBlock) * stride_]);
  }
  float* r = Record(row);
  std::memcpy(r, &id, sizeof(id));
  InitializeSparseRow(spec_, id, r + 2);
  std::copy(initial_record_.begin(), initial_record_.end(), r + 2 + spec_.dim);
  index_->Insert(id, row);
  ++rows_;
  return row;
}

Status SparseTable::Pull(const int64_t* ids, size_t n, float* out) const {
  RETURN_IF_ERROR(CheckPull(ids, n));
  PullChecked(ids, n, out);
  return Status::OK();
}

Status SparseTable::CheckPull(const int64_t* ids, size_t n) const {
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] == kReservedSparseId) {
      return InvalidArgument("pull of sparse table '" + spec_.name + "' names the reserved id -2^63");
    }
  }
  return Status::OK();
}

void SparseTable::PullChecked(const int64_t* ids, size_t n, float* out) const {
  const size_t dim = spec_.dim;
  std::shared_lock<std::shared_mutex> lock(mu_);
  Pipelined(
      ids, n,
      [&](int64_t, uint32_t row) {
        if (row != kNoRow) PrefetchValues(Record(row));
        return row;
      },
      [&](size_t i, uint32_t row) {
        float* dst = out + i * dim;
        if (row != kNoRow && RecordId(Record(row)) != ids[i]) row = FindRow(ids[i]);  // another id's tag
        if (row == kNoRow) {
          InitializeSparseRow(spec_, ids[i], dst);
        } else {
          CopyFloats(dst, Record(row) + 2, static_cast<int32_t>(dim));
        }
      });
}

Status SparseTable::CheckGradients(const int64_t* ids, size_t n) const {
  const std::string table = "sparse table '" + spec_.name + "'";
  if (!spec_.trainable) return FailedPrecondition(table + " is not trainable: it takes no gradients");
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] == kReservedSparseId) return InvalidArgument("gradient for " + table + " names the reserved id -2^63");
  }
  if (HasRepeatedIds(ids, n)) {
    return InvalidArgument("gradient for " + table + " names an id more than once (sum repeated ids first)");
  }
  return Status::OK();
}

Status SparseTable::ApplyGradients(const int64_t* ids, size_t n, const float* grads, float lr) {
  RETURN_IF_ERROR(CheckGradients(ids, n));
  ApplyCheckedGradients(ids, n, grads, lr);
  return Status::OK();
}

void SparseTable::ApplyCheckedGradients(const int64_t* ids, size_t n, const float* grads, float lr) {
  const float rate = lr >= 0 ? lr : static_cast<float>(optimizer_spec_.learning_rate);
  const int32_t dim = spec_.dim;
  // Rows are updated in place: the optimizers' kernels round the same at
  // every address (common/kernels/kernels.h), so a row updated here, after a
  // re-routed restore on another server, or as a dense one-row variable
  // comes out bit-identical.
  std::vector<float*> slot_ptrs(slots().size());
  std::unique_lock<std::mutex> turn(turn_);
  std::unique_lock<std::shared_mutex> lock(mu_);
  turn.unlock();
  // A pending cut has not copied every row yet: a row it still needs is
  // saved before its first update.
  const std::shared_ptr<Cut> cut = pending_.lock();
  if (n >= kParallelApplyRows) return ApplyInParallelLocked(ids, n, grads, rate, cut.get());
  Pipelined(
      ids, n,
      [&](int64_t id, uint32_t row) {
        if (row == kNoRow) row = NewRow(id);  // no tag matches: new (the ids are unique: never created twice)
        PrefetchRecord(Record(row));
        return row;
      },
      [&](size_t i, uint32_t row) {
        float* r = Record(row);
        if (RecordId(r) != ids[i]) {  // another id's tag
          row = FindRow(ids[i]);
          if (row == kNoRow) row = NewRow(ids[i]);
          r = Record(row);
        }
        if (cut && cut->MustSave(row)) {
          cut->Save(row, r);
          ++saved_on_write_;
        }
        for (size_t s = 0; s < slot_ptrs.size(); ++s) slot_ptrs[s] = r + slot_offsets_[s];
        optimizer_->Apply(r + 2, grads + i * dim, dim, slot_ptrs.data(), rate);
      });
}

// A large push's rows in three passes, the first and last shared with
// ParallelFor's helper in pieces of kParallelPieceRows: each id's row is
// located (reading the index and records only, as no other thread can
// while mu_ is held here); then, here alone, the new ids' rows are created
// and the rows a pending cut still needs are saved; then the rows are
// updated (each by one thread: the ids are unique). Each row's update is
// the same arithmetic as on the one-thread path, so the results are
// bit-identical.
void SparseTable::ApplyInParallelLocked(const int64_t* ids, size_t n, const float* grads, float rate, Cut* cut) {
  constexpr size_t kPiece = kParallelPieceRows;
  const size_t pieces = (n + kPiece - 1) / kPiece;
  thread_local std::vector<uint32_t> scratch;
  scratch.resize(n);
  uint32_t* const rows = scratch.data();  // this thread's: the helper's lambdas must not name the thread_local
  ParallelFor(pieces, [&](size_t p) {
    const size_t first = p * kPiece;
    const int64_t* piece = ids + first;
    Pipelined(
        piece, std::min(kPiece, n - first),
        [&](int64_t, uint32_t row) {
          if (row != kNoRow) PrefetchLine(Record(row));
          return row;
        },
        [&](size_t i, uint32_t row) {
          if (row != kNoRow && RecordId(Record(row)) != piece[i]) row = FindRow(piece[i]);  // another id's tag
          rows[first + i] = row;
        });
  });
  for (size_t i = 0; i < n; ++i) {
    if (rows[i] == kNoRow) rows[i] = NewRow(ids[i]);
    if (cut && cut->MustSave(rows[i])) {
      cut->Save(rows[i], Record(rows[i]));
      ++saved_on_write_;
    }
  }
  const int32_t dim = spec_.dim;
  ParallelFor(pieces, [&](size_t p) {
    constexpr size_t kAhead = 8;
    float* slot_ptrs[Optimizer::kMaxSlots];
    const size_t first = p * kPiece, end = std::min(n, first + kPiece);
    for (size_t i = first; i < std::min(end, first + kAhead); ++i) PrefetchRecord(Record(rows[i]));
    for (size_t i = first; i < end; ++i) {
      if (i + kAhead < end) PrefetchRecord(Record(rows[i + kAhead]));
      float* r = Record(rows[i]);
      for (size_t s = 0; s < slots().size(); ++s) slot_ptrs[s] = r + slot_offsets_[s];
      optimizer_->Apply(r + 2, grads + i * dim, dim, slot_ptrs, rate);
    }
  });
}

int64_t SparseTable::rows() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return rows_;
}

SparseTable::Memory SparseTable::memory() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  Memory m;
  uint64_t per_row = sizeof(int64_t) + sizeof(float) * spec_.dim;
  for (size_t s = 0; s < slots().size(); ++s) per_row += sizeof(float) * SlotWidth(s);
  m.payload_bytes = per_row * rows_;
  m.allocated_bytes = blocks_.size() * uint64_t{kRowsPerBlock} * stride_ * sizeof(float) +
                      index_->capacity() * SparseIndex::kSlotBytes;
  return m;
}

static_assert(kRowsPerBlock % SparseTable::kCutChunkRows == 0, "a cut's chunk lies inside one block");

void SparseTable::CopyChunk(Cut& cut, uint32_t chunk) const {
  if (cut.copied[chunk]) return;
  const uint32_t first = chunk * kCutChunkRows;
  const uint32_t count = std::min(kCutChunkRows, cut.rows - first);
  std::memcpy(cut.buffer.get() + static_cast<size_t>(first) * stride_, Record(first),
              static_cast<size_t>(count) * stride_ * sizeof(float));
  cut.copied[chunk] = 1;
}

void SparseTable::CopyPendingLocked() const {
  std::shared_ptr<Cut> cut = pending_.lock();
  if (!cut) return;
  for (uint32_t c = 0; c < cut->chunks; ++c) CopyChunk(*cut, c);  // skips the copied ones
  pending_.reset();  // its copier applies the side log
}

SparseTable::Records SparseTable::CopyRecords() const {
  std::unique_lock<std::shared_mutex> lock(mu_);
  CopyPendingLocked();
  Records out;
  out.rows = rows_;
  out.cut = std::make_shared<Cut>(rows_, stride_);
  if (rows_ > 0) pending_ = out.cut;
  return out;
}

uint64_t SparseTable::records_saved_on_write() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return saved_on_write_;
}

SparseRows SparseTable::Export() const { return SortRecords(CopyRecords()); }

SparseRows SparseTable::SortRecords(const Records& copied) const {
  Cut& cut = *copied.cut;
  {
    std::lock_guard<std::mutex> one_copier(cut.copy_mu);
    if (!cut.done) {
      for (uint32_t c = 0; c < cut.chunks; ++c) {
        std::unique_lock<std::mutex> turn(turn_);
        std::shared_lock<std::shared_mutex> lock(mu_);
        turn.unlock();
        CopyChunk(cut, c);
      }
      std::unique_lock<std::shared_mutex> lock(mu_);  // no update saves a row any more: every chunk is copied
      cut.ApplyLog();
      cut.FreeLog();
      if (pending_.lock() == copied.cut) pending_.reset();
      cut.done = true;
    }
  }
  const float* records = cut.buffer.get();
  const uint32_t n = copied.rows;
  std::vector<uint32_t> order = OrderById(records, n, stride_);
  SparseRows out;
  out.dim = spec_.dim;
  out.ids.resize(n);
  out.values.resize(static_cast<size_t>(n) * spec_.dim);
  out.slots.resize(slots().size());
  for (size_t s = 0; s < slots().size(); ++s) out.slots[s].resize(static_cast<size_t>(n) * SlotWidth(s));
  for (uint32_t i = 0; i < n; ++i) {
    const float* r = records + static_cast<size_t>(order[i]) * stride_;
    out.ids[i] = RecordId(r);
    std::memcpy(out.values.data() + static_cast<size_t>(i) * spec_.dim, r + 2, spec_.dim * sizeof(float));
    for (size_t s = 0; s < slots().size(); ++s) {
      const int32_t w = SlotWidth(s);
      std::memcpy(out.slots[s].data() + static_cast<size_t>(i) * w, r + slot_offsets_[s], w * sizeof(float));
    }
  }
  return out;
}

Status SparseTable::Import(const SparseRows& rows) {
  const std::string table = "sparse table '" + spec_.name + "'";
  const size_t n = rows.ids.size();
  if (rows.dim != spec_.dim) {
    return InvalidArgument(table + " has dim " + std::to_string(spec_.dim) + " but the rows have dim " +
                           std::to_string(rows.dim));
  }
  if (rows.values.size() != n * spec_.dim) return InvalidArgument(table + ": values do not match the ids");
  if (rows.slots.size() != slots().size()) {
    return InvalidArgument(table + " keeps " + std::to_string(slots().size()) + " optimizer slot(s) but the rows have " +
                           std::to_string(rows.slots.size()));
  }
  for (size_t s = 0; s < slots().size(); ++s) {
    if (rows.slots[s].size() != n * SlotWidth(s)) return InvalidArgument(table + ": slot " + SlotName(s) + " does not match the ids");
  }
  if (n >= kNoRow) return InvalidArgument(table + ": too many rows for one server");
  // Built aside (records written straight from the rows, the index sized
  // for them once), then swapped in: a repeated or reserved id, found on
  // the way, changes nothing, and the lock is held only for the swap.
  auto index = std::make_unique<SparseIndex>(n);
  std::vector<std::unique_ptr<float[]>> blocks;
  const size_t dim = spec_.dim;
  size_t used = 2 + dim;  // floats before the record's padding
  for (size_t s = 0; s < slots().size(); ++s) used += SlotWidth(s);
  for (size_t i = 0; i < n; ++i) {
    const int64_t id = rows.ids[i];
    if (id == kReservedSparseId) return InvalidArgument(table + ": the rows name the reserved id -2^63");
    if (i % kRowsPerBlock == 0) blocks.emplace_back(new float[static_cast<size_t>(kRowsPerBlock) * stride_]);
    float* r = blocks.back().get() + (i % kRowsPerBlock) * static_cast<size_t>(stride_);
    auto id_of = [&blocks, this](uint32_t row) {
      return RecordId(blocks[row / kRowsPerBlock].get() + static_cast<size_t>(row % kRowsPerBlock) * stride_);
    };
    if (!index->InsertNew(id, static_cast<uint32_t>(i), id_of)) {
      return InvalidArgument(table + ": the rows name an id more than once");
    }
    std::memcpy(r, &id, sizeof(id));
    std::memcpy(r + 2, rows.values.data() + i * dim, dim * sizeof(float));
    for (size_t s = 0; s < slots().size(); ++s) {
      const int32_t w = SlotWidth(s);
      std::memcpy(r + slot_offsets_[s], rows.slots[s].data() + i * w, w * sizeof(float));
    }
    std::fill(r + used, r + stride_, 0.0f);
  }
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    CopyPendingLocked();  // a pending cut still reads the old records
    index_.swap(index);
    blocks_.swap(blocks);
    rows_ = static_cast<uint32_t>(n);
  }
  return Status::OK();  // the old rows are freed here, after the lock
}

}  // namespace cairn
