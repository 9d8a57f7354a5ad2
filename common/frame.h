// The wire frame: every request and reply between Cairn processes.
//
//   header (40 bytes, little-endian)
//     u32 magic 'CARN'  u16 version  u16 type  u64 request_id
//     u32 control_len   u32 reserved (0)       u64 data_len   u64 checksum
//   control  control_len bytes (Cereal binary), zero-padded to a multiple of 64
//   data     data_len bytes of raw little-endian tensor values
//
// The checksum is XXH3-64 over header bytes [0, 32), the control bytes and the
// data bytes. Data is written straight from tensor buffers (scatter/gather)
// and, on receipt, tensors view the received buffer: no extra copies.
//
// Nothing in a frame is trusted: DecodeHeader bounds every length before a
// byte of payload is read, and VerifyPayload checks the checksum.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cairn {

constexpr uint32_t kFrameMagic = 0x4e524143;  // "CARN" in little-endian bytes
constexpr uint16_t kFrameVersion = 1;
constexpr size_t kFrameHeaderBytes = 40;
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
  uint64_t checksum = 0;

  // Bytes that follow the header: padded control, then data.
  uint64_t payload_len() const;
  uint64_t data_offset() const;  // offset of data within the payload
};

// A contiguous piece of bytes to send; the bytes must outlive the send.
struct ByteSpan {
  const void* data = nullptr;
  size_t size = 0;
};

// A frame ready to send: header bytes, control, padding, then data spans
// (kept alive by `keepalive`).
struct OutFrame {
  uint16_t type = 0;
  uint64_t request_id = 0;
  std::string control;
  std::vector<ByteSpan> data;
  std::vector<std::shared_ptr<const void>> keepalive;

  // Fills `header` (lengths, checksum) for this frame. Call after the fields
  // above are final.
  void Seal();
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

// Parses and bounds a header. Errors: bad magic, unknown version or type,
// non-zero reserved field, lengths over `limits`.
StatusOr<FrameHeader> DecodeHeader(const uint8_t* bytes, const FrameLimits& limits);

// Checks the checksum and the padding of a payload of header.payload_len()
// bytes, and fills `frame`. `payload` must be 64-byte aligned.
Status VerifyPayload(const FrameHeader& header, std::shared_ptr<uint8_t> payload, InFrame* frame);

// Allocates a 64-byte-aligned payload buffer (zeroed padding not required).
std::shared_ptr<uint8_t> AllocatePayload(uint64_t bytes);

// For tests and fuzzing: serializes a sealed frame into one buffer, and
// decodes a whole frame from contiguous bytes (an error if truncated).
std::string SerializeFrame(const OutFrame& frame);
StatusOr<InFrame> DecodeFrame(std::string_view bytes, const FrameLimits& limits);

}  // namespace cairn
