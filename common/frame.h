// The wire frame: every request and reply between Cairn processes.
//
//   header (40 bytes, little-endian)
//     u32 magic 'CARN'  u16 version  u16 type  u64 request_id
//     u32 control_len   u32 reserved (0)       u64 data_len  u64 header_checksum
//   control  control_len bytes (Cereal binary), zero-padded to a multiple of 64
//   data     data_len bytes of raw little-endian tensor values
//   trailer  u64 checksum
//
// header_checksum is XXH3-64 over header bytes [0, 32): a damaged length is
// caught before the receiver waits for (or allocates) a payload of that size.
// The trailer's checksum is XXH3-64 over header bytes [0, 32), the control
// bytes, the padding and the data bytes, in wire order. It trails the data so
// that a sender can write a large frame while another thread hashes it
// (PendingChecksum), and a receiver hashes each piece as it arrives, instead
// of each passing over the whole frame before (sender) or after (receiver)
// the transfer.
// Data is written straight from tensor buffers (scatter/gather) and, on
// receipt, tensors view the received buffer: no extra copies.
//
// Nothing in a frame is trusted: DecodeHeader checks the header checksum and
// bounds every length before a byte of payload is read, and no frame is handed
// on before its trailer checksum and its zero padding are checked.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct XXH3_state_s;  // xxhash.h's streaming state

namespace cairn {

constexpr uint32_t kFrameMagic = 0x4e524143;  // "CARN" in little-endian bytes
constexpr uint16_t kFrameVersion = 2;  // 1: one checksum in the header, none trailing
constexpr size_t kFrameHeaderBytes = 40;
constexpr size_t kFrameTrailerBytes = 8;
constexpr size_t kControlAlignment = 64;

enum class FrameType : uint16_t {
  kHello = 1,
  kCreateVariables = 2,
  kPull = 3,
  kPush = 4,
  kStats = 5,
  kSnapshotPrepare = 6,  // copy shards for a snapshot step; write them in the background
  kSnapshotWait = 7,     // answer when that step's database is synced (or failed)
  kSnapshotRestore = 8,  // load this server's shards from a committed snapshot
  kSparsePull = 9,       // rows of sparse tables by id
  // A reply carries the request's type with this bit set.
  kReplyBit = 0x8000,
};

bool IsKnownRequestType(uint16_t type);
inline uint16_t ReplyType(FrameType t) { return static_cast<uint16_t>(t) | 0x8000; }
const char* FrameTypeName(uint16_t type);

struct FrameLimits {
  uint32_t max_control_bytes = 4u << 20;         // 4 MiB of control data
  uint64_t max_data_bytes = uint64_t{1} << 30;   // 1 GiB of tensor values
};

struct FrameHeader {
  uint32_t magic = kFrameMagic;
  uint16_t version = kFrameVersion;
  uint16_t type = 0;
  uint64_t request_id = 0;
  uint32_t control_len = 0;
  uint32_t reserved = 0;
  uint64_t data_len = 0;
  uint64_t header_checksum = 0;

  // Bytes that follow the header: padded control, then data (the trailer not
  // included).
  uint64_t payload_len() const;
  uint64_t data_offset() const;  // offset of data within the payload
};

// The trailer checksum of one frame, fed in pieces as the frame is sent or
// received. Reusable: Begin starts the next frame. Not thread-safe.
class FrameChecksum {
 public:
  FrameChecksum();
  ~FrameChecksum();
  FrameChecksum(const FrameChecksum&) = delete;
  FrameChecksum& operator=(const FrameChecksum&) = delete;

  // Starts a frame: `header` is its (at least 32) first header bytes.
  void Begin(const uint8_t* header);
  // Adds the next `size` bytes after the header (control, padding, data).
  void Update(const void* bytes, size_t size);
  // The checksum of everything since Begin.
  uint64_t Digest() const;

 private:
  ::XXH3_state_s* state_;  // owned
};

// A contiguous piece of bytes to send; the bytes must outlive the send.
struct ByteSpan {
  const void* data = nullptr;
  size_t size = 0;
};

// A trailer checksum that one thread computes while another writes the frame
// (AsioTransport hashes a large request on the calling thread while the I/O
// thread writes its bytes; a server hashes a large pull reply off the
// connection's strand). Thread-safe.
class PendingChecksum {
 public:
  // Sets the checksum (once) and runs the waiting callback, if any, here.
  void Set(uint64_t checksum);
  // True, with the checksum, if it is set; otherwise false, and `on_set`
  // will run (on the thread that calls Set) once it is. A later call
  // replaces an earlier call's callback.
  bool GetOrNotify(uint64_t* checksum, std::function<void()> on_set);

 private:
  std::mutex mu_;
  bool set_ = false;                  // guarded by mu_
  uint64_t checksum_ = 0;             // guarded by mu_
  std::function<void()> on_set_;      // guarded by mu_
};

// Fills a frame's data while the frame is written, so that the first bytes
// go out before the last are made (a large sparse pull's reply: rows looked
// up a chunk at a time, each chunk on the wire while the next is looked up).
// The frame's data spans are fixed when it is sealed; the producer writes
// the bytes they point to, in order. Whoever writes the frame calls Produce
// once it has sent every byte produced so far (or cannot send more yet), and
// hashes each new piece at once, while it is in cache. Produce runs on the
// writer's thread (a FrameSocket's strand), so a producer owns or shares
// everything it reads. A frame with a producer is written once.
class FrameProducer {
 public:
  virtual ~FrameProducer() = default;
  // Fills more of the data and returns how many of its first bytes are
  // ready: more than the last call returned, and all of them (the frame's
  // data_len()) by the last call.
  virtual uint64_t Produce() = 0;
};

// A frame with at least this much data is worth hashing on another thread
// while it is written (PendingChecksum); a smaller one costs less to hash
// where it is written than to hand off.
constexpr uint64_t kParallelChecksumBytes = uint64_t{256} << 10;

// A frame ready to send: header bytes, control, padding, then data spans
// (kept alive by `keepalive`). The trailer checksum is computed by whoever
// writes the frame out (FrameSocket, SerializeFrame), as it writes, unless
// `pending_checksum` says another thread is computing it.
struct OutFrame {
  uint16_t type = 0;
  uint64_t request_id = 0;
  std::string control;
  std::vector<ByteSpan> data;
  std::vector<std::shared_ptr<const void>> keepalive;
  // If set, Checksum() arrives here and writers do not hash the frame.
  std::shared_ptr<PendingChecksum> pending_checksum;
  // If set, fills the data as it is written (not with pending_checksum).
  std::shared_ptr<FrameProducer> producer;

  // Fills the header (lengths, header checksum) for this frame. Call after
  // the fields above are final. Cheap: the data is not read.
  void Seal();
  // The trailer checksum (reads every byte; for tests and SerializeFrame).
  // Call after Seal, and after the producer (if any) is done.
  uint64_t Checksum() const;
  const uint8_t* header_bytes() const { return header_; }
  size_t padding() const;
  uint64_t data_len() const;

 private:
  uint8_t header_[kFrameHeaderBytes] = {};
};

// A received frame. `payload` owns the bytes that `control` and `data` view.
struct InFrame {
  FrameHeader header;
  std::shared_ptr<uint8_t> payload;
  std::string_view control;
  uint8_t* data = nullptr;
  uint64_t data_len = 0;
};

// Parses and checks a header. Errors: bad magic, unknown version or type,
// non-zero reserved field, lengths over `limits` (all found before the
// header checksum is), header checksum mismatch.
StatusOr<FrameHeader> DecodeHeader(const uint8_t* bytes, const FrameLimits& limits);

// Checks a received payload: `payload` holds header.payload_len() bytes and
// then the kFrameTrailerBytes trailer; `checksum` is the FrameChecksum of the
// header and those payload bytes (not the trailer), computed as they arrived.
// Checks it against the trailer, and the padding, and fills `frame`.
// `payload` must be 64-byte aligned.
Status FinishPayload(const FrameHeader& header, uint64_t checksum, std::shared_ptr<uint8_t> payload,
                     InFrame* frame);
// FinishPayload that first computes the checksum over the whole payload.
Status VerifyPayload(const FrameHeader& header, std::shared_ptr<uint8_t> payload, InFrame* frame);

// Allocates a 64-byte-aligned payload buffer (zeroed padding not required).
std::shared_ptr<uint8_t> AllocatePayload(uint64_t bytes);

// For tests and fuzzing: serializes a sealed frame into one buffer (running
// its producer, if any, to the end), and
// decodes a whole frame from contiguous bytes (an error if truncated).
std::string SerializeFrame(const OutFrame& frame);
StatusOr<InFrame> DecodeFrame(std::string_view bytes, const FrameLimits& limits);

}  // namespace cairn
