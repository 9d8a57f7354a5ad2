// Fuzzes the wire frame decoder (common/frame.h): DecodeHeader and
// DecodeFrame, with the default FrameLimits and with tight ones.
//
// Input: one mode byte, then the frame's bytes.
//   mode % 4 == 0  the bytes as they are
//   mode % 4 == 1  sealed: the harness writes the header checksum and the
//                  trailer checksum where the header's lengths put it (and
//                  cuts the input there), so the fuzzer reaches the checks
//                  behind the checksums: lengths, padding, type, the success path
//   mode % 4 == 2  sealed, with limits of 256 control and 512 data bytes
//   mode % 4 == 3  built: the bytes give a type, request id, control and
//                  data; OutFrame::Seal + SerializeFrame must decode to them
//
// Properties: no crash or sanitizer report; a frame that decodes re-encodes
// (OutFrame + SerializeFrame) to exactly its bytes, so the decoder accepts
// one encoding of each frame only; lengths agree with the header.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <fuzzer/FuzzedDataProvider.h>
#include <xxhash.h>

#include "common/frame.h"
#include "tests/fuzz/fuzz_check.h"

namespace cairn {
namespace {

constexpr size_t kHeaderChecksumAt = 32;  // frame.h: header_checksum covers header bytes [0, 32)

uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

template <typename T> T Get(const std::string& b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof(T));
  return v;
}

// Writes the header checksum and, if the frame the header describes fits in
// `bytes`, the trailer checksum after it (dropping what follows).
void Seal(std::string* bytes) {
  if (bytes->size() < kFrameHeaderBytes) return;
  uint8_t* b = reinterpret_cast<uint8_t*>(bytes->data());
  const uint64_t header_sum = XXH3_64bits(b, kHeaderChecksumAt);
  std::memcpy(b + kHeaderChecksumAt, &header_sum, sizeof(header_sum));
  const uint64_t payload = AlignUp(Get<uint32_t>(*bytes, 16), kControlAlignment) + Get<uint64_t>(*bytes, 24);
  const uint64_t available = bytes->size() - kFrameHeaderBytes;
  if (payload > available || available - payload < kFrameTrailerBytes) return;
  bytes->resize(kFrameHeaderBytes + payload + kFrameTrailerBytes);
  b = reinterpret_cast<uint8_t*>(bytes->data());
  FrameChecksum sum;
  sum.Begin(b);
  sum.Update(b + kFrameHeaderBytes, payload);
  const uint64_t trailer = sum.Digest();
  std::memcpy(b + kFrameHeaderBytes + payload, &trailer, sizeof(trailer));
}

// The frame's bytes as this build would send them.
std::string Reencode(const InFrame& f) {
  OutFrame out;
  out.type = f.header.type;
  out.request_id = f.header.request_id;
  out.control = std::string(f.control);
  if (f.data_len > 0) out.data.push_back(ByteSpan{f.data, f.data_len});
  out.Seal();
  return SerializeFrame(out);
}

void CheckHeader(const std::string& bytes, const FrameLimits& limits) {
  if (bytes.size() < kFrameHeaderBytes) return;
  StatusOr<FrameHeader> h = DecodeHeader(reinterpret_cast<const uint8_t*>(bytes.data()), limits);
  if (!h.ok()) return;
  FUZZ_CHECK(h->control_len <= limits.max_control_bytes, "a control length over the limit was accepted");
  FUZZ_CHECK(h->data_len <= limits.max_data_bytes, "a data length over the limit was accepted");
  FUZZ_CHECK(h->reserved == 0 && h->magic == kFrameMagic && h->version == kFrameVersion, "bad fixed field accepted");
  FUZZ_CHECK(IsKnownRequestType(h->type & 0x7fff), "unknown frame type accepted");
  FUZZ_CHECK(h->payload_len() == h->data_offset() + h->data_len, "payload length disagrees with its parts");
  FUZZ_CHECK(h->data_offset() % kControlAlignment == 0 && h->data_offset() >= h->control_len, "bad data offset");
  FUZZ_CHECK(std::strcmp(FrameTypeName(h->type), "Unknown") != 0, "a known type has no name");
}

void CheckFrame(const std::string& bytes, const FrameLimits& limits) {
  CheckHeader(bytes, limits);
  StatusOr<InFrame> f = DecodeFrame(bytes, limits);
  if (!f.ok()) return;
  FUZZ_CHECK(f->control.size() == f->header.control_len, "control view has the wrong length");
  FUZZ_CHECK(f->data_len == f->header.data_len, "data length disagrees with the header");
  FUZZ_CHECK(bytes.size() == kFrameHeaderBytes + f->header.payload_len() + kFrameTrailerBytes,
             "a frame with missing or extra bytes was accepted");
  FUZZ_CHECK(reinterpret_cast<uintptr_t>(f->payload.get()) % kControlAlignment == 0, "payload is not 64-byte aligned");
  FUZZ_CHECK(Reencode(*f) == bytes, "a decoded frame does not re-encode to its bytes");
}

// Mode 3: a frame made by the sender's code must decode to what was sent.
void CheckBuilt(FuzzedDataProvider& in) {
  OutFrame out;
  out.type = in.ConsumeBool() ? in.ConsumeIntegral<uint16_t>()
                              : static_cast<uint16_t>(in.ConsumeIntegralInRange<uint16_t>(1, 9) |
                                                      (in.ConsumeBool() ? 0x8000 : 0));
  out.request_id = in.ConsumeIntegral<uint64_t>();
  out.control = in.ConsumeRandomLengthString(4096);
  const std::string data = in.ConsumeRemainingBytesAsString();
  if (!data.empty()) out.data.push_back(ByteSpan{data.data(), data.size()});
  out.Seal();
  const std::string bytes = SerializeFrame(out);
  FUZZ_CHECK(bytes.size() == kFrameHeaderBytes + AlignUp(out.control.size(), kControlAlignment) + data.size() +
                                 kFrameTrailerBytes,
             "a serialized frame has the wrong size");
  StatusOr<InFrame> f = DecodeFrame(bytes, FrameLimits{});
  if (!IsKnownRequestType(out.type & 0x7fff)) {
    FUZZ_CHECK(!f.ok(), "a frame of an unknown type was accepted");
    return;
  }
  FUZZ_CHECK(f.ok(), "a frame this build made does not decode");
  FUZZ_CHECK(f->header.type == out.type && f->header.request_id == out.request_id, "header fields changed");
  FUZZ_CHECK(f->control == out.control, "control bytes changed");
  FUZZ_CHECK(f->data_len == data.size() && (data.empty() || std::memcmp(f->data, data.data(), data.size()) == 0),
             "data bytes changed");
  // One flipped bit anywhere must be caught (by a field check or a checksum).
  if (!bytes.empty()) {
    std::string damaged = bytes;
    const size_t bit = out.request_id % (damaged.size() * 8);
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    FUZZ_CHECK(!DecodeFrame(damaged, FrameLimits{}).ok(), "a frame with a flipped bit was accepted");
  }
}

}  // namespace
}  // namespace cairn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn;
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  if (mode == 3) {
    FuzzedDataProvider in(data + 1, size - 1);
    CheckBuilt(in);
    return 0;
  }
  std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  FrameLimits limits;
  if (mode == 2) limits = FrameLimits{256, 512};
  if (mode != 0) Seal(&bytes);
  CheckFrame(bytes, limits);
  return 0;
}
