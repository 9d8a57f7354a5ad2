// Fuzzes the control-message decoders (common/messages.h): DecodeMessage
// for every request and reply a frame's control section carries, and the
// checks a receiver runs next on what decoded (ValidateTensorDesc,
// ValidateSparseDesc, ValidateSpec, ValidateSparseSpec, SlotTableOf,
// WireStatus::ToStatus).
//
// Input: one byte choosing the message type (kMessages, by index mod its
// size), then the control bytes.
//
// Properties: DecodeMessage never throws or crashes and fails only with
// InvalidArgument; a message that decodes re-encodes (EncodeMessage) to
// exactly its bytes; a TensorDesc or SparseDesc that validates against a
// data section lies inside it (every byte it names is read, under ASan).
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "common/aligned_buffer.h"
#include "common/messages.h"
#include "tests/fuzz/fuzz_check.h"

namespace cairn {
namespace {

// The data section descs are checked against: kDataBytes of it are real
// memory, so a desc that validates is read in full.
constexpr uint64_t kDataBytes = 4096;

uint8_t* DataSection() {
  static const std::shared_ptr<uint8_t> data = [] {
    auto p = AllocateAlignedBuffer(kDataBytes, /*zero=*/true);
    return p;
  }();
  return data.get();
}

// Reads every byte of [offset, offset + bytes) of the data section.
void Touch(uint64_t offset, uint64_t bytes) {
  const uint8_t* p = DataSection() + offset;
  uint8_t sum = 0;
  for (uint64_t i = 0; i < bytes; ++i) sum = static_cast<uint8_t>(sum + p[i]);
  volatile uint8_t sink = sum;
  (void)sink;
}

void Inspect(const WireStatus& s) {
  Status st = s.ToStatus();
  FUZZ_CHECK(st.ok() == (s.code == 0), "a non-zero status code read as OK");
}

void Inspect(const TensorDesc& d) {
  UpdateKindName(d.update);
  // Lengths near the top of uint64 must not overflow the range checks.
  (void)ValidateTensorDesc(d, UINT64_MAX);
  (void)ValidateTensorDesc(d, uint64_t{1} << 30);
  if (!ValidateTensorDesc(d, kDataBytes).ok()) return;
  FUZZ_CHECK(d.offset <= kDataBytes && d.bytes <= kDataBytes - d.offset, "a desc outside the data section passed");
  std::shared_ptr<uint8_t> owner(DataSection(), [](uint8_t*) {});
  Tensor t = ViewTensor(d, owner, DataSection());
  FUZZ_CHECK(t.byte_size() == d.bytes, "the viewed tensor's size differs from the desc's bytes");
  Touch(d.offset, t.byte_size());
}

void Inspect(const SparseDesc& d) {
  (void)ValidateSparseDesc(d, UINT64_MAX, true);
  for (bool with_values : {false, true}) {
    if (!ValidateSparseDesc(d, kDataBytes, with_values).ok()) continue;
    Touch(d.ids_offset, d.count * sizeof(int64_t));
    if (with_values) Touch(d.values_offset, d.count * static_cast<uint64_t>(d.dim) * sizeof(float));
  }
}

void Inspect(const VariableSpec& spec) {
  if (!ValidateSpec(spec).ok()) return;
  (void)spec.DebugString();
  (void)spec.byte_size();
  (void)spec.row_bytes();
}

void Inspect(const OptimizerSpec& o) { (void)SlotTableOf(o); }

void Inspect(const SparseTableSpec& spec) {
  if (ValidateSparseSpec(spec).ok()) (void)spec.DebugString();
}

void Inspect(const TrainingMode& m) {
  (void)ConsistencyName(m.consistency);
  (void)MissingWorkersName(m.missing_workers);
}

void Inspect(const HelloRequest&) {}
void Inspect(const HelloReply& r) {
  Inspect(r.status);
  volatile bool staged = r.restore_staged;  // read as ps_client.cc reads it
  (void)staged;
}
void Inspect(const CreateRequest& r) {
  Inspect(r.mode);
  for (const ShardDecl& s : r.shards) {
    Inspect(s.spec);
    Inspect(s.optimizer);
  }
  for (const SparseTableDecl& t : r.sparse_tables) {
    Inspect(t.spec);
    Inspect(t.optimizer);
  }
}
void Inspect(const StatusReply& r) { Inspect(r.status); }
void Inspect(const PullRequest&) {}
void Inspect(const PullReply& r) {
  Inspect(r.status);
  for (const TensorDesc& d : r.tensors) Inspect(d);
}
void Inspect(const PushRequest& r) {
  for (const TensorDesc& d : r.grads) Inspect(d);
  for (const SparseDesc& d : r.sparse) Inspect(d);
}
void Inspect(const SparsePullRequest& r) {
  for (const SparseDesc& d : r.tables) Inspect(d);
}
void Inspect(const SparsePullReply& r) {
  Inspect(r.status);
  for (const SparseDesc& d : r.tables) Inspect(d);
}
void Inspect(const StatsReply& r) { Inspect(r.status); }
void Inspect(const SnapshotPrepareRequest&) {}
void Inspect(const SnapshotPrepareReply& r) { Inspect(r.status); }
void Inspect(const SnapshotWaitRequest&) {}
void Inspect(const SnapshotWaitReply& r) { Inspect(r.status); }
void Inspect(const SnapshotRestoreRequest&) {}
void Inspect(const SnapshotRestoreReply& r) { Inspect(r.status); }

template <class M>
void Check(std::string_view bytes, const char* name) {
  M message;
  Status s = DecodeMessage(bytes, &message, name);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == StatusCode::kInvalidArgument, "a decode failure that is not InvalidArgument");
    return;
  }
  FUZZ_CHECK(EncodeMessage(message) == bytes, "a decoded message does not re-encode to its bytes");
  Inspect(message);
}

using CheckFn = void (*)(std::string_view, const char*);
struct MessageType {
  const char* name;
  CheckFn check;
};

// Every message type of messages.h; the corpus generator (make_fuzz_corpus)
// writes seeds in this order, the index as the first byte.
constexpr MessageType kMessages[] = {
    {"Hello", Check<HelloRequest>},
    {"HelloReply", Check<HelloReply>},
    {"CreateVariables", Check<CreateRequest>},
    {"StatusReply", Check<StatusReply>},
    {"Pull", Check<PullRequest>},
    {"PullReply", Check<PullReply>},
    {"Push", Check<PushRequest>},
    {"SparsePull", Check<SparsePullRequest>},
    {"SparsePullReply", Check<SparsePullReply>},
    {"StatsReply", Check<StatsReply>},
    {"SnapshotPrepare", Check<SnapshotPrepareRequest>},
    {"SnapshotPrepareReply", Check<SnapshotPrepareReply>},
    {"SnapshotWait", Check<SnapshotWaitRequest>},
    {"SnapshotWaitReply", Check<SnapshotWaitReply>},
    {"SnapshotRestore", Check<SnapshotRestoreRequest>},
    {"SnapshotRestoreReply", Check<SnapshotRestoreReply>},
};
constexpr size_t kNumMessages = sizeof(kMessages) / sizeof(kMessages[0]);

}  // namespace
}  // namespace cairn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn;
  if (size == 0) return 0;
  const MessageType& type = kMessages[data[0] % kNumMessages];
  type.check(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), type.name);
  return 0;
}
