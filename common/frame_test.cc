#include "common/frame.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include "common/event_loop.h"
#include "common/frame_socket.h"
#include "common/messages.h"
#include "common/tensor.h"
#include "common/variable_spec.h"

namespace cairn {
namespace {

// Header byte offsets (see frame.h).
constexpr size_t kMagicAt = 0, kVersionAt = 4, kTypeAt = 6, kRequestIdAt = 8, kControlLenAt = 16,
                 kReservedAt = 20, kDataLenAt = 24, kChecksumAt = 32;  // the header checksum

template <typename T>
void PutAt(std::string& bytes, size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof(T));
}
template <typename T>
T GetAt(std::string_view bytes, size_t at) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof(T));
  return v;
}

uint64_t AlignUp64(uint64_t n) { return (n + 63) / 64 * 64; }

// Recomputes the header checksum of a frame whose header fields a test
// changed, so that the checks behind it decide.
void ResealHeader(std::string& bytes) {
  PutAt<uint64_t>(bytes, kChecksumAt, XXH3_64bits(bytes.data(), kChecksumAt));
}

bool Contains(const std::string& haystack, const char* needle) { return haystack.find(needle) != std::string::npos; }

// An OutFrame whose data spans point into strings it keeps alive itself.
OutFrame MakeFrame(uint16_t type, uint64_t request_id, std::string control, std::vector<std::string> pieces) {
  auto storage = std::make_shared<std::vector<std::string>>(std::move(pieces));
  OutFrame f;
  f.type = type;
  f.request_id = request_id;
  f.control = std::move(control);
  for (const std::string& p : *storage) f.data.push_back(ByteSpan{p.data(), p.size()});
  f.keepalive.push_back(storage);
  f.Seal();
  return f;
}

std::string Pattern(size_t n, uint8_t start) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(start + i * 7);
  return s;
}

// A small valid frame: 5 control bytes (59 of padding) and 24 data bytes.
std::string SmallFrameWithPadding() {
  return SerializeFrame(
      MakeFrame(static_cast<uint16_t>(FrameType::kPush), 0x0102030405060708, "hello", {Pattern(16, 1), Pattern(8, 200)}));
}

// A small valid frame with no padding: 64 control bytes and 24 data bytes.
std::string SmallFrameWithoutPadding() {
  return SerializeFrame(
      MakeFrame(static_cast<uint16_t>(FrameType::kPull), 77, Pattern(64, 3), {Pattern(16, 1), Pattern(8, 200)}));
}

// --- Round trip ------------------------------------------------------------

TEST(Frame, RoundTripsTypeRequestIdControlAndDataSpans) {
  struct Case {
    uint16_t type;
    uint64_t request_id;
    std::string control;
    std::vector<std::string> pieces;
  };
  const std::vector<Case> cases = {
      {static_cast<uint16_t>(FrameType::kHello), 0, "", {}},
      {static_cast<uint16_t>(FrameType::kPull), 1, "", {Pattern(12, 9)}},
      {static_cast<uint16_t>(FrameType::kPush), 2, "x", {}},
      {ReplyType(FrameType::kPull), 3, Pattern(63, 4), {Pattern(4, 1), "", Pattern(100, 50), ""}},
      {static_cast<uint16_t>(FrameType::kCreateVariables), 0xffffffffffffffff, Pattern(64, 5), {"", ""}},
      {ReplyType(FrameType::kStats), 123456789, Pattern(65, 6), {Pattern(1, 1), Pattern(3, 2), Pattern(4096, 3)}},
      {static_cast<uint16_t>(FrameType::kStats), 42, Pattern(1000, 7), {Pattern(17, 0)}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("control " + std::to_string(c.control.size()) + " bytes, " + std::to_string(c.pieces.size()) +
                 " spans, type " + std::to_string(c.type));
    OutFrame out = MakeFrame(c.type, c.request_id, c.control, c.pieces);
    std::string data;
    for (const std::string& p : c.pieces) data += p;
    EXPECT_EQ(out.data_len(), data.size());
    EXPECT_EQ(out.padding(), AlignUp64(c.control.size()) - c.control.size());

    std::string bytes = SerializeFrame(out);
    ASSERT_EQ(bytes.size(), kFrameHeaderBytes + AlignUp64(c.control.size()) + data.size() + kFrameTrailerBytes);
    EXPECT_EQ(std::memcmp(bytes.data(), out.header_bytes(), kFrameHeaderBytes), 0);
    // Padding is zero; data follows it.
    for (size_t i = kFrameHeaderBytes + c.control.size(); i < kFrameHeaderBytes + AlignUp64(c.control.size()); ++i) {
      ASSERT_EQ(bytes[i], '\0') << i;
    }
    EXPECT_EQ(bytes.substr(kFrameHeaderBytes + AlignUp64(c.control.size()), data.size()), data);
    EXPECT_EQ(GetAt<uint64_t>(bytes, bytes.size() - kFrameTrailerBytes), out.Checksum());

    StatusOr<InFrame> in = DecodeFrame(bytes, FrameLimits{});
    ASSERT_TRUE(in.ok()) << in.status();
    const FrameHeader& h = in->header;
    EXPECT_EQ(h.magic, kFrameMagic);
    EXPECT_EQ(h.version, kFrameVersion);
    EXPECT_EQ(h.type, c.type);
    EXPECT_EQ(h.request_id, c.request_id);
    EXPECT_EQ(h.control_len, c.control.size());
    EXPECT_EQ(h.reserved, 0u);
    EXPECT_EQ(h.data_len, data.size());
    EXPECT_EQ(h.header_checksum, GetAt<uint64_t>(bytes, kChecksumAt));
    EXPECT_NE(h.header_checksum, 0u);
    EXPECT_EQ(h.data_offset(), AlignUp64(c.control.size()));
    EXPECT_EQ(h.payload_len(), AlignUp64(c.control.size()) + data.size());
    EXPECT_EQ(std::string(in->control), c.control);
    EXPECT_EQ(in->data_len, data.size());
    ASSERT_NE(in->payload, nullptr);
    EXPECT_EQ(in->data, in->payload.get() + h.data_offset());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(in->data), in->data_len), data);
    // The data section starts 64-byte aligned in memory, so tensors can view it.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(in->data) % 64, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(in->payload.get()) % 64, 0u);
  }
}

TEST(Frame, HeaderIsLittleEndianAtTheDocumentedOffsets) {
  std::string bytes = SerializeFrame(MakeFrame(ReplyType(FrameType::kPush), 0x1122334455667788, "abc", {"defg"}));
  EXPECT_EQ(bytes.substr(0, 4), "CARN");
  EXPECT_EQ(GetAt<uint16_t>(bytes, kVersionAt), 2);
  EXPECT_EQ(GetAt<uint16_t>(bytes, kTypeAt), 0x8004);
  EXPECT_EQ(GetAt<uint64_t>(bytes, kRequestIdAt), 0x1122334455667788u);
  EXPECT_EQ(GetAt<uint32_t>(bytes, kControlLenAt), 3u);
  EXPECT_EQ(GetAt<uint32_t>(bytes, kReservedAt), 0u);
  EXPECT_EQ(GetAt<uint64_t>(bytes, kDataLenAt), 4u);
}

// The two checksums as frame.h documents them, computed independently: the
// header's over its first 32 bytes; the trailer's over those, the control,
// the padding and the data, in wire order.
TEST(Frame, ChecksumsCoverWhatTheLayoutSays) {
  for (const std::string& bytes :
       {SmallFrameWithPadding(), SmallFrameWithoutPadding(), SerializeFrame(MakeFrame(1, 1, "", {}))}) {
    EXPECT_EQ(GetAt<uint64_t>(bytes, kChecksumAt), XXH3_64bits(bytes.data(), 32));
    std::string covered = bytes.substr(0, 32) + bytes.substr(kFrameHeaderBytes,
                                                             bytes.size() - kFrameHeaderBytes - kFrameTrailerBytes);
    EXPECT_EQ(GetAt<uint64_t>(bytes, bytes.size() - kFrameTrailerBytes), XXH3_64bits(covered.data(), covered.size()));
  }
}

// A checksum fed in any split of the same bytes is the checksum of them all.
TEST(FrameChecksum, PiecesInAnySplitGiveTheWholeChecksum) {
  const OutFrame f = MakeFrame(static_cast<uint16_t>(FrameType::kPush), 5, Pattern(100, 1), {Pattern(300000, 2)});
  const std::string bytes = SerializeFrame(f);
  const std::string_view after_header =
      std::string_view(bytes).substr(kFrameHeaderBytes, bytes.size() - kFrameHeaderBytes - kFrameTrailerBytes);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{64}, size_t{4095}, size_t{65536}, after_header.size()}) {
    FrameChecksum sum;
    sum.Begin(f.header_bytes());
    for (size_t at = 0; at < after_header.size(); at += piece) {
      sum.Update(after_header.data() + at, std::min(piece, after_header.size() - at));
    }
    EXPECT_EQ(sum.Digest(), f.Checksum()) << piece;
  }
}

TEST(Frame, DecodedFrameOwnsItsBytesAfterTheInputIsGone) {
  StatusOr<InFrame> in = [] {
    std::string bytes = SerializeFrame(MakeFrame(3, 9, "control!", {"payload-bytes"}));
    return DecodeFrame(bytes, FrameLimits{});
  }();
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->control, "control!");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(in->data), in->data_len), "payload-bytes");
}

TEST(Frame, TypeNamesAndKnownTypes) {
  EXPECT_STREQ(FrameTypeName(1), "Hello");
  EXPECT_STREQ(FrameTypeName(ReplyType(FrameType::kPush)), "Push");
  EXPECT_STREQ(FrameTypeName(0), "Unknown");
  EXPECT_STREQ(FrameTypeName(6), "SnapshotPrepare");
  EXPECT_STREQ(FrameTypeName(9), "SparsePull");
  EXPECT_STREQ(FrameTypeName(10), "Unknown");
  for (int t = 0; t < 0x10000; ++t) {
    EXPECT_EQ(IsKnownRequestType(static_cast<uint16_t>(t)), t >= 1 && t <= 9) << t;
  }
}

// --- Decoding errors --------------------------------------------------------

TEST(DecodeFrame, EveryTruncationOfAValidFrameIsDataLoss) {
  for (const std::string& bytes : {SmallFrameWithPadding(), SmallFrameWithoutPadding(),
                                   SerializeFrame(MakeFrame(1, 1, "", {})),
                                   SerializeFrame(MakeFrame(2, 2, Pattern(70, 1), {Pattern(33, 2)}))}) {
    ASSERT_TRUE(DecodeFrame(bytes, FrameLimits{}).ok());
    for (size_t len = 0; len < bytes.size(); ++len) {
      StatusOr<InFrame> in = DecodeFrame(std::string_view(bytes).substr(0, len), FrameLimits{});
      ASSERT_FALSE(in.ok()) << "prefix of " << len << " of " << bytes.size() << " bytes decoded";
      EXPECT_EQ(in.status().code(), StatusCode::kDataLoss) << len << ": " << in.status();
      EXPECT_TRUE(Contains(in.status().message(), "truncated")) << len << ": " << in.status();
    }
  }
}

TEST(DecodeFrame, TrailingBytesAfterTheFrameAreDataLoss) {
  std::string bytes = SmallFrameWithPadding();
  for (size_t extra : {1, 7, 64, 1000}) {
    StatusOr<InFrame> in = DecodeFrame(bytes + std::string(extra, '\0'), FrameLimits{});
    ASSERT_FALSE(in.ok()) << extra;
    EXPECT_EQ(in.status().code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(in.status().message(), "trailing")) << in.status();
  }
}

// Checks the error of `bytes` (a valid frame with byte `pos` changed) is the
// one the changed field should produce. Returns false if it decoded.
bool ExpectErrorForChangedByte(const std::string& bytes, size_t pos, size_t control_len) {
  StatusOr<InFrame> in = DecodeFrame(bytes, FrameLimits{});
  if (in.ok()) return false;
  const Status& s = in.status();
  const std::string& m = s.message();
  SCOPED_TRACE("byte " + std::to_string(pos) + ": " + s.ToString());
  if (pos < kVersionAt) {
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(m, "magic"));
  } else if (pos < kTypeAt) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(m, "version"));
  } else if (pos < kRequestIdAt) {
    // Another known type (or the reply bit) passes the header and fails the checksum.
    EXPECT_TRUE((s.code() == StatusCode::kInvalidArgument && Contains(m, "type")) ||
                (s.code() == StatusCode::kDataLoss && Contains(m, "checksum")));
  } else if (pos < kControlLenAt) {
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(m, "checksum"));
  } else if (pos < kReservedAt || (pos >= kDataLenAt && pos < kChecksumAt)) {
    // A length: too long, too short, over the limit, or (same padded size)
    // caught by the padding or checksum check.
    EXPECT_TRUE((s.code() == StatusCode::kDataLoss &&
                 (Contains(m, "truncated") || Contains(m, "trailing") || Contains(m, "checksum") ||
                  Contains(m, "padding"))) ||
                (s.code() == StatusCode::kOutOfRange && Contains(m, "exceeds")));
  } else if (pos < kDataLenAt) {
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(m, "reserved"));
  } else if (pos >= kFrameHeaderBytes + control_len && pos < kFrameHeaderBytes + AlignUp64(control_len)) {
    // Padding: the checksum or the padding check catches it.
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(m, "padding") || Contains(m, "checksum"));
  } else {
    // Header checksum, control, data or trailer.
    EXPECT_EQ(s.code(), StatusCode::kDataLoss);
    EXPECT_TRUE(Contains(m, "checksum"));
  }
  return true;
}

void CheckEveryChangedByteIsAnError(const std::string& valid, size_t control_len) {
  ASSERT_TRUE(DecodeFrame(valid, FrameLimits{}).ok());
  // Positions where some change decoded OK, as "first..last" ranges.
  std::string ranges;
  int decoded = 0;
  size_t run_start = 0;
  bool in_run = false;
  for (size_t pos = 0; pos <= valid.size(); ++pos) {
    bool any_decoded = false;
    if (pos < valid.size()) {
      for (uint8_t mask : {uint8_t{0xff}, uint8_t{0x01}, uint8_t{0x80}, uint8_t{0x10}}) {
        std::string bytes = valid;
        bytes[pos] = static_cast<char>(bytes[pos] ^ mask);
        if (!ExpectErrorForChangedByte(bytes, pos, control_len)) {
          any_decoded = true;
          ++decoded;
        }
      }
    }
    if (any_decoded && !in_run) {
      run_start = pos;
      in_run = true;
    } else if (!any_decoded && in_run) {
      ranges += std::to_string(run_start) + ".." + std::to_string(pos - 1) + " ";
      in_run = false;
    }
  }
  EXPECT_EQ(decoded, 0) << "corrupted frames decoded OK; changed byte positions: " << ranges << "(control is "
                        << control_len << " bytes, so padding is bytes " << kFrameHeaderBytes + control_len << ".."
                        << kFrameHeaderBytes + AlignUp64(control_len) - 1 << ")";
}

TEST(DecodeFrame, EveryFlippedByteOfAFrameWithoutPaddingIsAnError) {
  CheckEveryChangedByteIsAnError(SmallFrameWithoutPadding(), 64);
}

// Padding is covered by the checksum and must also be zero.
TEST(DecodeFrame, EveryFlippedByteOfAFrameWithPaddingIsAnError) {
  CheckEveryChangedByteIsAnError(SmallFrameWithPadding(), 5);
}

TEST(DecodeFrame, RejectsNonZeroPaddingBetweenControlAndData) {
  std::string bytes = SmallFrameWithPadding();
  ASSERT_TRUE(DecodeFrame(bytes, FrameLimits{}).ok());
  bytes[kFrameHeaderBytes + 5] = 'X';  // first padding byte
  StatusOr<InFrame> in = DecodeFrame(bytes, FrameLimits{});
  EXPECT_FALSE(in.ok()) << "a frame with non-zero padding decoded OK";
  if (!in.ok()) {
    EXPECT_EQ(in.status().code(), StatusCode::kDataLoss);
  }
}

TEST(DecodeFrame, RejectsUnknownTypes) {
  for (uint16_t type : {uint16_t{0}, uint16_t{10}, uint16_t{0x7fff}, uint16_t{0x8000}, uint16_t{0x800a},
                        uint16_t{0xffff}, uint16_t{0x4001}}) {
    // Sealed with a valid checksum: the type check alone must reject it.
    std::string bytes = SerializeFrame(MakeFrame(type, 1, "c", {"d"}));
    StatusOr<InFrame> in = DecodeFrame(bytes, FrameLimits{});
    ASSERT_FALSE(in.ok()) << type;
    EXPECT_EQ(in.status().code(), StatusCode::kInvalidArgument) << in.status();
    EXPECT_TRUE(Contains(in.status().message(), "type")) << in.status();
  }
  for (uint16_t type = 1; type <= 9; ++type) {
    EXPECT_TRUE(DecodeFrame(SerializeFrame(MakeFrame(type, 1, "c", {"d"})), FrameLimits{}).ok()) << type;
    EXPECT_TRUE(DecodeFrame(SerializeFrame(MakeFrame(type | 0x8000, 1, "c", {"d"})), FrameLimits{}).ok()) << type;
  }
}

TEST(DecodeFrame, RejectsWrongVersions) {
  for (uint16_t version : {uint16_t{0}, uint16_t{1}, uint16_t{3}, uint16_t{0x0200}, uint16_t{0xffff}}) {
    std::string bytes = SmallFrameWithPadding();
    PutAt<uint16_t>(bytes, kVersionAt, version);
    StatusOr<InFrame> in = DecodeFrame(bytes, FrameLimits{});
    ASSERT_FALSE(in.ok()) << version;
    EXPECT_EQ(in.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(in.status().message(), "version")) << in.status();
  }
}

TEST(DecodeFrame, RejectsBadMagicAndNonZeroReserved) {
  std::string bad_magic = SmallFrameWithPadding();
  PutAt<uint32_t>(bad_magic, kMagicAt, 0x5454454e);
  EXPECT_EQ(DecodeFrame(bad_magic, FrameLimits{}).status().code(), StatusCode::kDataLoss);

  std::string reserved = SmallFrameWithPadding();
  PutAt<uint32_t>(reserved, kReservedAt, 1);
  StatusOr<InFrame> in = DecodeFrame(reserved, FrameLimits{});
  ASSERT_FALSE(in.ok());
  EXPECT_TRUE(Contains(in.status().message(), "reserved")) << in.status();
}

// A header alone (no payload follows) claiming more than the limits: the
// error must be the limit, found from the header, not a truncation found
// after reading (or allocating) the payload.
TEST(DecodeFrame, RejectsOversizedLengthsFromTheHeaderAlone) {
  const FrameLimits limits;
  const std::string header = SerializeFrame(MakeFrame(4, 1, "", {})).substr(0, kFrameHeaderBytes);

  for (uint32_t control_len : {limits.max_control_bytes + 1, uint32_t{0xffffffff}}) {
    std::string bytes = header;
    PutAt<uint32_t>(bytes, kControlLenAt, control_len);
    StatusOr<InFrame> in = DecodeFrame(bytes, limits);
    ASSERT_FALSE(in.ok());
    EXPECT_EQ(in.status().code(), StatusCode::kOutOfRange) << in.status();
    StatusOr<FrameHeader> h = DecodeHeader(reinterpret_cast<const uint8_t*>(bytes.data()), limits);
    EXPECT_EQ(h.status().code(), StatusCode::kOutOfRange);
  }
  for (uint64_t data_len : {limits.max_data_bytes + 1, uint64_t{1} << 62, std::numeric_limits<uint64_t>::max(),
                            std::numeric_limits<uint64_t>::max() - 63}) {
    std::string bytes = header;
    PutAt<uint64_t>(bytes, kDataLenAt, data_len);
    StatusOr<InFrame> in = DecodeFrame(bytes, limits);
    ASSERT_FALSE(in.ok());
    EXPECT_EQ(in.status().code(), StatusCode::kOutOfRange) << in.status();
    StatusOr<FrameHeader> h = DecodeHeader(reinterpret_cast<const uint8_t*>(bytes.data()), limits);
    EXPECT_EQ(h.status().code(), StatusCode::kOutOfRange);
  }
  // At the limits: DecodeHeader accepts, DecodeFrame reports truncation (and
  // must not allocate a gigabyte to find out).
  std::string at_limit = header;
  PutAt<uint32_t>(at_limit, kControlLenAt, limits.max_control_bytes);
  PutAt<uint64_t>(at_limit, kDataLenAt, limits.max_data_bytes);
  ResealHeader(at_limit);
  EXPECT_TRUE(DecodeHeader(reinterpret_cast<const uint8_t*>(at_limit.data()), limits).ok());
  EXPECT_EQ(DecodeFrame(at_limit, limits).status().code(), StatusCode::kDataLoss);
}

TEST(DecodeFrame, RejectsCompleteFramesOverTighterLimits) {
  // The whole, correctly checksummed frame is present: only the limit can reject it.
  std::string bytes = SerializeFrame(MakeFrame(3, 5, Pattern(100, 1), {Pattern(200, 2)}));
  FrameLimits exact;
  exact.max_control_bytes = 100;
  exact.max_data_bytes = 200;
  EXPECT_TRUE(DecodeFrame(bytes, exact).ok());

  FrameLimits small_control = exact;
  small_control.max_control_bytes = 99;
  EXPECT_EQ(DecodeFrame(bytes, small_control).status().code(), StatusCode::kOutOfRange);

  FrameLimits small_data = exact;
  small_data.max_data_bytes = 199;
  EXPECT_EQ(DecodeFrame(bytes, small_data).status().code(), StatusCode::kOutOfRange);
}

// With a permissive data limit, control_len=64 plus data_len=2^64-64 makes
// payload_len() wrap to 0 (and 2^64-72 makes payload_len() plus the trailer
// wrap), which then "matches" a short input, and the checksum runs over 2^64
// bytes past a small buffer. Run in a child process so a crash fails only
// this test.
TEST(DecodeFrameDeathTest, RejectsLengthsWhosePaddedSumWrapsAround) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (uint64_t data_len : {std::numeric_limits<uint64_t>::max() - 63, std::numeric_limits<uint64_t>::max() - 71}) {
    std::string bytes = SerializeFrame(MakeFrame(4, 1, "", {}));
    PutAt<uint32_t>(bytes, kControlLenAt, 64);  // no padding, so no padding check gets in first
    PutAt<uint64_t>(bytes, kDataLenAt, data_len);
    ResealHeader(bytes);
    FrameLimits unlimited;
    unlimited.max_data_bytes = std::numeric_limits<uint64_t>::max();
    EXPECT_EXIT(
        {
          StatusOr<InFrame> in = DecodeFrame(bytes, unlimited);
          std::_Exit(in.ok() ? 1 : 0);
        },
        testing::ExitedWithCode(0), "")
        << data_len;
  }
}

TEST(DecodeFrame, RandomBytesNeverDecode) {
  std::mt19937 rng(20240607);
  std::uniform_int_distribution<int> len_dist(0, 512);
  std::uniform_int_distribution<int> byte_dist(0, 255);
  for (int i = 0; i < 10000; ++i) {
    std::string bytes(len_dist(rng), '\0');
    for (char& c : bytes) c = static_cast<char>(byte_dist(rng));
    StatusOr<InFrame> in = DecodeFrame(bytes, FrameLimits{});
    ASSERT_FALSE(in.ok()) << "random string " << i << " decoded";
  }
}

TEST(DecodeFrame, RandomBytesBehindAValidMagicVersionAndTypeNeverDecode) {
  std::mt19937 rng(777);
  std::uniform_int_distribution<int> len_dist(0, 512);
  std::uniform_int_distribution<int> byte_dist(0, 255);
  std::uniform_int_distribution<int> type_dist(1, 5);
  std::uniform_int_distribution<int> small_len(0, 200);
  int reached_checksum = 0, reached_lengths = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string bytes;
    const int mode = i % 3;
    if (mode == 2) {
      // Consistent lengths, zero reserved, zero padding and a valid header
      // checksum: only the trailer checksum can catch it.
      const uint32_t control_len = static_cast<uint32_t>(small_len(rng));
      const uint64_t data_len = static_cast<uint64_t>(small_len(rng));
      bytes.resize(kFrameHeaderBytes + AlignUp64(control_len) + data_len + kFrameTrailerBytes);
      for (char& c : bytes) c = static_cast<char>(byte_dist(rng));
      PutAt<uint32_t>(bytes, kControlLenAt, control_len);
      PutAt<uint32_t>(bytes, kReservedAt, 0);
      PutAt<uint64_t>(bytes, kDataLenAt, data_len);
      std::fill(bytes.begin() + kFrameHeaderBytes + control_len,
                bytes.begin() + kFrameHeaderBytes + AlignUp64(control_len), '\0');  // zero padding
    } else {
      bytes.resize(std::max<size_t>(kFrameHeaderBytes / 5 * 2, len_dist(rng)));
      for (char& c : bytes) c = static_cast<char>(byte_dist(rng));
      if (mode == 1 && bytes.size() >= kFrameHeaderBytes) {
        PutAt<uint32_t>(bytes, kReservedAt, 0);
        // Small lengths, so the length checks (not the limits) decide.
        PutAt<uint32_t>(bytes, kControlLenAt, static_cast<uint32_t>(small_len(rng)));
        PutAt<uint64_t>(bytes, kDataLenAt, static_cast<uint64_t>(small_len(rng)));
      }
    }
    PutAt<uint32_t>(bytes, kMagicAt, kFrameMagic);
    PutAt<uint16_t>(bytes, kVersionAt, kFrameVersion);
    PutAt<uint16_t>(bytes, kTypeAt, static_cast<uint16_t>(type_dist(rng) | (i % 2 ? 0x8000 : 0)));
    // Modes 1 and 2 get past the header checksum, to the checks behind it.
    if (mode != 0 && bytes.size() >= kFrameHeaderBytes) ResealHeader(bytes);
    StatusOr<InFrame> in = DecodeFrame(bytes, FrameLimits{});
    ASSERT_FALSE(in.ok()) << "random frame " << i << " decoded";
    const std::string& m = in.status().message();
    if (Contains(m, "frame checksum")) ++reached_checksum;
    if (Contains(m, "truncated") || Contains(m, "trailing")) ++reached_lengths;
  }
  // The generator really exercises the deeper checks.
  EXPECT_GE(reached_checksum, 3000);
  EXPECT_GE(reached_lengths, 1000);
}

// --- FrameSocket over loopback -----------------------------------------------------

namespace asio = boost::asio;
using asio::ip::tcp;

// What one FrameSocket received, and how it closed. Shared with the
// socket's handlers, which hold it: a handler may still run on a loop thread
// while the test that made the Inbox returns (a socket closing when its peer
// goes, say), so the Inbox must not die with the test's stack frame.
struct Inbox : std::enable_shared_from_this<Inbox> {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<InFrame> frames;
  bool closed = false;
  Status reason;

  FrameSocket::FrameHandler OnFrame() {
    return [self = shared_from_this()](InFrame f) {
      std::lock_guard<std::mutex> lock(self->mu);
      self->frames.push_back(std::move(f));
      self->cv.notify_all();
    };
  }
  FrameSocket::CloseHandler OnClose() {
    return [self = shared_from_this()](const Status& s) {
      std::lock_guard<std::mutex> lock(self->mu);
      self->closed = true;
      self->reason = s;
      self->cv.notify_all();
    };
  }
  bool WaitForFrames(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(20), [&] { return frames.size() >= n || closed; }) &&
           frames.size() >= n;
  }
  bool WaitForClose() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(20), [&] { return closed; });
  }
};

// Both ends of one loopback TCP connection, on strands of `loop`.
std::pair<tcp::socket, tcp::socket> ConnectedPair(EventLoop& loop) {
  tcp::acceptor acceptor(loop.io(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket a(asio::make_strand(loop.io())), b(asio::make_strand(loop.io()));
  a.connect(acceptor.local_endpoint());
  acceptor.accept(b);
  return {std::move(a), std::move(b)};
}

// Two started FrameSockets, the ends of one connection, and their inboxes.
struct Started {
  std::shared_ptr<FrameSocket> a, b;
  std::shared_ptr<Inbox> at_a, at_b;
};
Started StartedPair(EventLoop& loop) {
  auto [a_sock, b_sock] = ConnectedPair(loop);
  Started p{std::make_shared<FrameSocket>(std::move(a_sock), FrameLimits{}),
            std::make_shared<FrameSocket>(std::move(b_sock), FrameLimits{}), std::make_shared<Inbox>(),
            std::make_shared<Inbox>()};
  p.a->Start(p.at_a->OnFrame(), p.at_a->OnClose());
  p.b->Start(p.at_b->OnFrame(), p.at_b->OnClose());
  return p;
}

// A frame of `data_bytes` (in `spans` pieces of `Pattern` bytes) whose
// control names its index.
OutFrame NumberedFrame(int index, size_t data_bytes, int spans) {
  std::vector<std::string> pieces;
  for (int i = 0; i < spans; ++i) {
    const size_t n = data_bytes / spans + (i == spans - 1 ? data_bytes % spans : 0);
    pieces.push_back(Pattern(n, static_cast<uint8_t>(index * 13 + i)));
  }
  return MakeFrame(static_cast<uint16_t>(FrameType::kPush), static_cast<uint64_t>(index), "frame " + std::to_string(index),
                   std::move(pieces));
}

void ExpectSameFrame(const OutFrame& sent, const InFrame& got) {
  EXPECT_EQ(got.header.request_id, sent.request_id);
  EXPECT_EQ(got.control, sent.control);
  std::string data;
  for (const ByteSpan& s : sent.data) data.append(static_cast<const char*>(s.data), s.size);
  ASSERT_EQ(got.data_len, data.size());
  EXPECT_TRUE(std::memcmp(got.data, data.data(), data.size()) == 0) << "data of frame " << sent.request_id;
}

// Sizes around the hashing steps, with one or many spans, sent both ways at
// once (so each side's writes meet a full socket while it also reads).
TEST(FrameSocket, FramesOfEverySizeArriveWholeAndInOrderBothWays) {
  EventLoop loop(2);
  auto [a, b, at_a, at_b] = StartedPair(loop);
  const std::vector<std::pair<size_t, int>> shapes = {
      {0, 1},          {1, 1},           {1000, 3},           {(64 << 10) - 57, 1}, {(64 << 10) + 1, 2},
      {(1 << 20), 1},  {(1 << 20) + 5, 7}, {(5 << 20) + 3, 40}, {100, 1},            {(256 << 10) * 3, 3}};
  std::vector<OutFrame> sent;
  for (size_t i = 0; i < shapes.size(); ++i) sent.push_back(NumberedFrame(static_cast<int>(i), shapes[i].first, shapes[i].second));
  for (const OutFrame& f : sent) {
    a->Send(f);
    b->Send(f);
  }
  ASSERT_TRUE(at_b->WaitForFrames(sent.size())) << at_b->reason;
  ASSERT_TRUE(at_a->WaitForFrames(sent.size())) << at_a->reason;
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    ExpectSameFrame(sent[i], at_b->frames[i]);
    ExpectSameFrame(sent[i], at_a->frames[i]);
  }
  a->Close(Cancelled("test done"));
  EXPECT_TRUE(at_a->WaitForClose());
  EXPECT_TRUE(at_b->WaitForClose());
}

// A frame whose checksum another thread computes: written up to its held-back
// tail at once, finished when the checksum arrives (before or after the
// socket gets there).
TEST(FrameSocket, AFrameWithAPendingChecksumIsFinishedWhenItArrives) {
  EventLoop loop(1);
  auto [a, b, at_a, at_b] = StartedPair(loop);
  std::vector<OutFrame> sent;
  for (int i = 0; i < 4; ++i) {
    OutFrame f = NumberedFrame(i, (3 << 20) + i * 1000, 1 + i);
    auto pending = std::make_shared<PendingChecksum>();
    f.pending_checksum = pending;
    sent.push_back(f);
    if (i % 2 == 0) pending->Set(f.Checksum());  // known before the write starts
    a->Send(f);
    if (i % 2 == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the write is waiting for it
      pending->Set(f.Checksum());
    }
  }
  ASSERT_TRUE(at_b->WaitForFrames(sent.size())) << at_b->reason;
  for (size_t i = 0; i < sent.size(); ++i) ExpectSameFrame(sent[i], at_b->frames[i]);

  // A wrong checksum is the receiver's DataLoss.
  OutFrame bad = NumberedFrame(9, 1 << 20, 1);
  bad.pending_checksum = std::make_shared<PendingChecksum>();
  bad.pending_checksum->Set(bad.Checksum() + 1);
  a->Send(bad);
  ASSERT_TRUE(at_b->WaitForClose());
  EXPECT_EQ(at_b->reason.code(), StatusCode::kDataLoss) << at_b->reason;
  EXPECT_EQ(at_b->frames.size(), sent.size());
}

// A producer that fills a frame's data (one buffer, any spans over it) with
// Pattern(n, start), `step` bytes per call, counting its calls; or, if
// `stall_after` is set, stops making progress after that many bytes.
class PatternProducer : public FrameProducer {
 public:
  PatternProducer(std::shared_ptr<std::string> buffer, uint8_t start, uint64_t step, uint64_t stall_after = UINT64_MAX)
      : buffer_(std::move(buffer)), pattern_(Pattern(buffer_->size(), start)), step_(step), stall_after_(stall_after) {}
  uint64_t Produce() override {
    ++calls;
    const uint64_t to = std::min<uint64_t>({ready_ + step_, buffer_->size(), std::max(stall_after_, ready_)});
    std::memcpy(buffer_->data() + ready_, pattern_.data() + ready_, to - ready_);
    return ready_ = to;
  }
  std::atomic<int> calls{0};

 private:
  const std::shared_ptr<std::string> buffer_;
  const std::string pattern_;
  const uint64_t step_, stall_after_;
  uint64_t ready_ = 0;
};

// A frame of `bytes` filled by a PatternProducer, as `spans` spans over one
// buffer (which starts as garbage: only the producer's bytes may go out).
OutFrame ProducedFrame(int index, uint64_t bytes, int spans, uint64_t step, std::shared_ptr<PatternProducer>* producer,
                       uint64_t stall_after = UINT64_MAX) {
  auto buffer = std::make_shared<std::string>(bytes, '\xee');
  OutFrame f;
  f.type = static_cast<uint16_t>(FrameType::kPush);
  f.request_id = static_cast<uint64_t>(index);
  f.control = "produced " + std::to_string(index);
  for (int i = 0; i < spans; ++i) {
    const uint64_t from = bytes * i / spans, to = bytes * (i + 1) / spans;
    f.data.push_back(ByteSpan{buffer->data() + from, to - from});
  }
  *producer = std::make_shared<PatternProducer>(buffer, static_cast<uint8_t>(index * 13), step, stall_after);
  f.producer = *producer;
  f.keepalive.push_back(buffer);
  f.Seal();
  return f;
}

// Frames whose data is made as they are written, in steps of every size,
// between plain frames on the same connection: each arrives whole, in
// order, with a checksum the receiver accepts; the producer is called once
// per step (none for a frame without data); SerializeFrame runs it too.
TEST(FrameSocket, AFrameWithAProducerIsFilledAsItIsWrittenAndArrivesWhole) {
  EventLoop loop(1);
  auto [a, b, at_a, at_b] = StartedPair(loop);
  struct Shape {
    uint64_t bytes;
    int spans;
    uint64_t step;
  };
  const std::vector<Shape> shapes = {{(6 << 20) + 3, 3, 256 << 10}, {1000, 1, 1 << 20}, {0, 1, 64},
                                     {(1 << 20) + 7, 5, 70001},     {300000, 2, 65536}};
  std::vector<OutFrame> sent;
  std::vector<std::shared_ptr<PatternProducer>> producers(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    sent.push_back(NumberedFrame(100 + static_cast<int>(i), 4096, 1));  // a plain frame before each
    a->Send(sent.back());
    const Shape& s = shapes[i];
    sent.push_back(ProducedFrame(static_cast<int>(i), s.bytes, s.spans, s.step, &producers[i]));
    a->Send(sent.back());
  }
  ASSERT_TRUE(at_b->WaitForFrames(sent.size())) << at_b->reason;
  for (size_t i = 0; i < sent.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    ExpectSameFrame(sent[i], at_b->frames[i]);  // the spans now hold what the producer made
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    const uint64_t step = shapes[i].step;
    EXPECT_EQ(producers[i]->calls.load(), static_cast<int>((shapes[i].bytes + step - 1) / step)) << "frame " << i;
    std::string data;
    for (const ByteSpan& sp : sent[2 * i + 1].data) data.append(static_cast<const char*>(sp.data), sp.size);
    EXPECT_EQ(data, Pattern(shapes[i].bytes, static_cast<uint8_t>(i * 13))) << "frame " << i;
  }

  // SerializeFrame runs a producer to the end, and gives the bytes (and
  // checksum) of the same frame made beforehand.
  std::shared_ptr<PatternProducer> p;
  const OutFrame produced = ProducedFrame(7, 200000, 3, 50000, &p);
  const std::string bytes = SerializeFrame(produced);
  EXPECT_EQ(p->calls.load(), 4);
  OutFrame plain = produced;
  plain.producer = nullptr;
  EXPECT_EQ(bytes, SerializeFrame(plain));
  StatusOr<InFrame> decoded = DecodeFrame(bytes, FrameLimits{});
  ASSERT_TRUE(decoded.ok()) << decoded.status();

  // A producer that stops making progress closes the connection (Internal,
  // naming the bytes) instead of sending a frame it cannot finish.
  std::shared_ptr<PatternProducer> stalled;
  a->Send(ProducedFrame(8, 1 << 20, 1, 100000, &stalled, /*stall_after=*/300000));
  ASSERT_TRUE(at_a->WaitForClose());
  EXPECT_EQ(at_a->reason.code(), StatusCode::kInternal) << at_a->reason;
  EXPECT_NE(at_a->reason.message().find("300000 of 1048576"), std::string::npos) << at_a->reason;
  ASSERT_TRUE(at_b->WaitForClose());
  EXPECT_EQ(at_b->frames.size(), sent.size());
}

// Bytes written to a FrameSocket by a plain socket, and how it closed.
Status CloseReasonAfterReceiving(const std::string& bytes, bool then_shutdown) {
  EventLoop loop(1);
  auto [raw, b_sock] = ConnectedPair(loop);
  auto b = std::make_shared<FrameSocket>(std::move(b_sock), FrameLimits{});
  auto at_b = std::make_shared<Inbox>();
  b->Start(at_b->OnFrame(), at_b->OnClose());
  boost::system::error_code ec;
  asio::write(raw, asio::buffer(bytes), ec);
  if (then_shutdown) raw.shutdown(tcp::socket::shutdown_send, ec);
  if (!at_b->WaitForClose()) return Internal("the socket did not close");
  if (!at_b->frames.empty()) return Internal("a damaged frame was delivered");
  return at_b->reason;
}

// Every byte of a frame bigger than one hashing step, damaged on the wire:
// header, control, padding, data at the start, across steps and at the end,
// and the trailer.
TEST(FrameSocket, ADamagedByteAnywhereInAStreamedFrameClosesWithDataLoss) {
  const OutFrame f = MakeFrame(static_cast<uint16_t>(FrameType::kPush), 9, "ctl", {Pattern(700000, 1), Pattern(5, 2)});
  const std::string good = SerializeFrame(f);
  const size_t data_at = kFrameHeaderBytes + 64;
  for (size_t pos : {size_t{9}, size_t{33}, kFrameHeaderBytes + 1, kFrameHeaderBytes + 10, data_at, data_at + 65536,
                     data_at + 300000, good.size() - kFrameTrailerBytes - 1, good.size() - 1}) {
    std::string bad = good;
    bad[pos] ^= 0x20;
    Status s = CloseReasonAfterReceiving(bad, /*then_shutdown=*/false);
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << "byte " << pos << ": " << s;
  }
}

TEST(FrameSocket, AFrameCutShortClosesWithoutDelivering) {
  const std::string good = SerializeFrame(NumberedFrame(1, 300000, 2));
  for (size_t cut : {size_t{1}, kFrameHeaderBytes, kFrameHeaderBytes + 100, good.size() - 1}) {
    Status s = CloseReasonAfterReceiving(good.substr(0, cut), /*then_shutdown=*/true);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << "cut at " << cut << ": " << s;
  }
}

// --- Messages -----------------------------------------------------------------

// Little-endian writer matching Cereal's binary archive on this host.
struct Writer {
  std::string out;
  template <typename T> Writer& Put(T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  Writer& Str(const std::string& s) {
    Put<uint64_t>(s.size());
    out += s;
    return *this;
  }
  // A PushRequest's fields before its tensor count: worker, sequence,
  // train_step, step, learning_rate, global_step.
  Writer& PushHead(int32_t worker, uint64_t sequence) {
    // incarnation 0 (not de-duplicated)
    // not a train step, step 0, not leaving, no learning rate, no global step
    return Put<int32_t>(worker).Put<uint64_t>(0).Put<uint64_t>(sequence).Put<uint8_t>(0).Put<int64_t>(0).Put<uint8_t>(0)
        .Put<float>(-1).Str("");
  }
};

TensorDesc Desc(std::string name, DType dtype, Shape shape, int64_t row_begin, uint64_t offset) {
  TensorDesc d;
  d.name = std::move(name);
  d.dtype = dtype;
  d.shape = std::move(shape);
  d.row_begin = row_begin;
  d.offset = offset;
  d.bytes = static_cast<uint64_t>(NumElements(d.shape)) * DTypeSize(dtype);
  return d;
}

void ExpectDescEq(const TensorDesc& a, const TensorDesc& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.row_begin, b.row_begin);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.bytes, b.bytes);
}

PushRequest SamplePush() {
  PushRequest push;
  push.worker_id = 3;
  push.sequence = 0xabcdef0123;
  push.grads.push_back(Desc("dense/kernel", DType::kFloat32, {2, 3}, 10, 0));
  push.grads.push_back(Desc("global_step", DType::kInt64, {}, 0, 64));
  push.grads.push_back(Desc("empty", DType::kFloat32, {0, 7}, 5, 128));
  return push;
}

PullReply SamplePullReply() {
  PullReply reply;
  reply.status = WireStatus::From(NotFound("variable 'x' is not on server 1"));
  reply.tensors.push_back(Desc("w", DType::kFloat32, {4, 4, 2}, 100, 0));
  reply.tensors.push_back(Desc("b", DType::kFloat32, {4}, 0, 128));
  return reply;
}

CreateRequest SampleCreate() {
  CreateRequest req;
  req.mode.consistency = Consistency::kSync;
  req.mode.num_workers = 3;
  req.mode.sync_timeout_ms = 1234;
  ShardDecl a;
  a.optimizer.kind = "adam";
  a.optimizer.learning_rate = 0.001;
  a.optimizer.beta1 = 0.8;
  a.optimizer.nesterov = true;
  a.optimizer.l2 = 1e-4;
  a.spec.name = "embedding";
  a.spec.shape = {100000, 64};
  a.spec.init.kind = InitKind::kTruncatedNormal;
  a.spec.init.mean = 0.1;
  a.spec.init.stddev = 0.02;
  a.spec.init.seed = 0xfeedface;
  a.row_begin = 25000;
  a.row_end = 50000;
  ShardDecl b;
  b.spec.name = "global_step";
  b.spec.shape = {};
  b.spec.dtype = DType::kInt64;
  b.spec.trainable = false;
  b.spec.init.kind = InitKind::kConstant;
  b.spec.init.value = 5;
  b.row_begin = 0;
  b.row_end = 1;
  req.shards = {a, b};
  return req;
}

TEST(Messages, PushRequestRoundTrips) {
  PushRequest push = SamplePush();
  std::string bytes = EncodeMessage(push);
  PushRequest back;
  ASSERT_TRUE(DecodeMessage(bytes, &back, "PushRequest").ok());
  EXPECT_EQ(back.worker_id, 3);
  EXPECT_EQ(back.sequence, 0xabcdef0123u);
  ASSERT_EQ(back.grads.size(), 3u);
  for (size_t i = 0; i < 3; ++i) ExpectDescEq(back.grads[i], push.grads[i]);
}

TEST(Messages, PullReplyRoundTrips) {
  PullReply reply = SamplePullReply();
  PullReply back;
  ASSERT_TRUE(DecodeMessage(EncodeMessage(reply), &back, "PullReply").ok());
  EXPECT_EQ(back.status.code, static_cast<int32_t>(StatusCode::kNotFound));
  EXPECT_EQ(back.status.ToStatus(), NotFound("variable 'x' is not on server 1"));
  ASSERT_EQ(back.tensors.size(), 2u);
  for (size_t i = 0; i < 2; ++i) ExpectDescEq(back.tensors[i], reply.tensors[i]);
}

TEST(Messages, CreateRequestWithVariableSpecsRoundTrips) {
  CreateRequest req = SampleCreate();
  CreateRequest back;
  ASSERT_TRUE(DecodeMessage(EncodeMessage(req), &back, "CreateRequest").ok());
  EXPECT_EQ(back.mode, req.mode);
  ASSERT_EQ(back.shards.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.shards[i].optimizer, req.shards[i].optimizer);
    EXPECT_EQ(back.shards[i].spec, req.shards[i].spec) << back.shards[i].spec.DebugString();
    EXPECT_EQ(back.shards[i].row_begin, req.shards[i].row_begin);
    EXPECT_EQ(back.shards[i].row_end, req.shards[i].row_end);
  }
}

TEST(Messages, SmallMessagesRoundTrip) {
  PullRequest pull;
  pull.names = {"a", "", "dense/kernel"};
  PullRequest pull_back;
  ASSERT_TRUE(DecodeMessage(EncodeMessage(pull), &pull_back, "PullRequest").ok());
  EXPECT_EQ(pull_back.names, pull.names);

  StatsReply stats;
  stats.status = WireStatus::From(Status::OK());
  stats.pushes_applied = 1;
  stats.pulls_served = 2;
  stats.frames_rejected = 3;
  stats.variables = 4;
  StatsReply stats_back;
  ASSERT_TRUE(DecodeMessage(EncodeMessage(stats), &stats_back, "StatsReply").ok());
  EXPECT_TRUE(stats_back.status.ToStatus().ok());
  EXPECT_EQ(stats_back.pushes_applied, 1u);
  EXPECT_EQ(stats_back.pulls_served, 2u);
  EXPECT_EQ(stats_back.frames_rejected, 3u);
  EXPECT_EQ(stats_back.variables, 4u);

  HelloReply hello;
  hello.status = WireStatus::From(Unavailable("later"));
  hello.server_index = 2;
  HelloReply hello_back;
  ASSERT_TRUE(DecodeMessage(EncodeMessage(hello), &hello_back, "HelloReply").ok());
  EXPECT_EQ(hello_back.server_index, 2);
  EXPECT_EQ(hello_back.status.ToStatus(), Unavailable("later"));
}

TEST(Messages, WireStatusMapsUnknownCodesToInternal) {
  EXPECT_TRUE((WireStatus{0, "ignored"}).ToStatus().ok());
  EXPECT_EQ((WireStatus{5, "m"}).ToStatus(), OutOfRange("m"));
  EXPECT_EQ((WireStatus{11, "m"}).ToStatus().code(), StatusCode::kUnimplemented);
  EXPECT_EQ((WireStatus{12, "m"}).ToStatus().code(), StatusCode::kAborted);
  EXPECT_EQ((WireStatus{13, "m"}).ToStatus().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ((WireStatus{14, "m"}).ToStatus().code(), StatusCode::kInternal);
  EXPECT_EQ((WireStatus{-1, "m"}).ToStatus().code(), StatusCode::kInternal);
}

TEST(Messages, WireLayoutMatchesTheHandWrittenEncoding) {
  // The malformed-message tests below patch counts at hand-computed offsets;
  // make sure the layout they assume is the real one.
  PushRequest push;
  push.worker_id = 3;
  push.sequence = 9;
  push.grads.push_back(Desc("g", DType::kFloat32, {2}, 1, 8));
  Writer w;
  w.PushHead(3, 9).Put<uint64_t>(1);
  w.Str("g").Put<uint8_t>(1).Put<uint64_t>(1).Put<int64_t>(2).Put<int64_t>(1).Put<uint64_t>(8).Put<uint64_t>(8);
  w.Put<uint8_t>(0);  // update kind: gradient
  w.Put<uint64_t>(0);  // no sparse gradients
  EXPECT_EQ(EncodeMessage(push), w.out);

  PullRequest pull;
  pull.names = {"ab"};
  Writer p;
  p.Put<uint64_t>(1).Str("ab").Put<int32_t>(-1).Put<int64_t>(-1);  // no worker, no clock
  EXPECT_EQ(EncodeMessage(pull), p.out);
}

template <class M>
void ExpectEveryTruncationFails(const M& message, const char* type_name) {
  const std::string bytes = EncodeMessage(message);
  {
    M back;
    ASSERT_TRUE(DecodeMessage(bytes, &back, type_name).ok());
  }
  for (size_t len = 0; len < bytes.size(); ++len) {
    M back;
    Status s = DecodeMessage(std::string_view(bytes).substr(0, len), &back, type_name);
    ASSERT_FALSE(s.ok()) << type_name << " truncated to " << len << " of " << bytes.size() << " bytes decoded";
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(s.message(), type_name)) << s;
  }
}

SparseDesc Sparse(const std::string& table, uint64_t count, int32_t dim, uint64_t ids_offset, uint64_t values_offset) {
  SparseDesc d;
  d.table = table;
  d.count = count;
  d.dim = dim;
  d.ids_offset = ids_offset;
  d.values_offset = values_offset;
  return d;
}

TEST(Messages, SparseRequestsRoundTrip) {
  PushRequest push = SamplePush();
  push.sparse = {Sparse("emb/user", 3, 16, 64, 88), Sparse("emb/item", 1, 4, 280, 288)};
  PushRequest back;
  ASSERT_TRUE(DecodeMessage(EncodeMessage(push), &back, "PushRequest").ok());
  ASSERT_EQ(back.sparse.size(), 2u);
  EXPECT_EQ(back.sparse[1].table, "emb/item");
  EXPECT_EQ(back.sparse[0].count, 3u);
  EXPECT_EQ(back.sparse[0].dim, 16);
  EXPECT_EQ(back.sparse[0].values_offset, 88u);
  ExpectEveryTruncationFails(push, "PushRequest");

  CreateRequest create = SampleCreate();
  SparseTableDecl decl;
  decl.spec.name = "emb/user";
  decl.spec.dim = 16;
  decl.spec.init.kind = InitKind::kNormal;
  decl.optimizer.kind = "adagrad";
  create.sparse_tables = {decl};
  CreateRequest create_back;
  ASSERT_TRUE(DecodeMessage(EncodeMessage(create), &create_back, "CreateRequest").ok());
  ASSERT_EQ(create_back.sparse_tables.size(), 1u);
  EXPECT_EQ(create_back.sparse_tables[0], decl);

  SparsePullRequest pull;
  pull.tables = {Sparse("emb/user", 5, 16, 0, 0)};
  ExpectEveryTruncationFails(pull, "SparsePullRequest");
}

TEST(Messages, SparseDescsAreCheckedAgainstTheDataAndTheLimits) {
  const uint64_t data = 3 * 8 + 3 * 4 * 4;  // 3 ids, 3 x 4 floats
  EXPECT_TRUE(ValidateSparseDesc(Sparse("t", 3, 4, 0, 24), data, true).ok());
  EXPECT_TRUE(ValidateSparseDesc(Sparse("t", 3, 4, 0, 9999), data, /*with_values=*/false).ok());
  auto fails = [&](const SparseDesc& d, const char* says) {
    Status s = ValidateSparseDesc(d, data, true);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << says;
    EXPECT_TRUE(Contains(s.message(), says)) << s;
    EXPECT_TRUE(Contains(s.message(), "sparse table 't'")) << s;
  };
  fails(Sparse("t", 4, 4, 0, 24), "values lie outside");      // one id more than the values hold
  fails(Sparse("t", 10, 4, 0, 24), "ids lie outside");        // the ids run past the data
  fails(Sparse("t", 3, 4, 4, 28), "misaligned");              // ids at a 4-byte offset
  fails(Sparse("t", 3, 0, 0, 24), "dim 0 is outside");
  fails(Sparse("t", 3, 5000, 0, 24), "dim 5000 is outside");
  fails(Sparse("t", uint64_t{1} << 40, 4, 0, 24), "exceed the limit");  // a count whose byte size would overflow
  fails(Sparse("t", 3, 4, UINT64_MAX - 7, 24), "ids lie outside");
}

TEST(Messages, DecodingAnyTruncationFails) {
  ExpectEveryTruncationFails(SamplePush(), "PushRequest");
  ExpectEveryTruncationFails(SamplePullReply(), "PullReply");
  ExpectEveryTruncationFails(SampleCreate(), "CreateRequest");
  PullRequest pull;
  pull.names = {"a", "bc"};
  ExpectEveryTruncationFails(pull, "PullRequest");
}

TEST(Messages, DecodingTrailingGarbageFails) {
  for (const std::string& garbage : {std::string(1, '\0'), std::string("xyz"), std::string(100, '\xff')}) {
    PushRequest push;
    Status s = DecodeMessage(EncodeMessage(SamplePush()) + garbage, &push, "PushRequest");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(s.message(), "trailing")) << s;

    CreateRequest create;
    EXPECT_FALSE(DecodeMessage(EncodeMessage(SampleCreate()) + garbage, &create, "CreateRequest").ok());
    PullReply reply;
    EXPECT_FALSE(DecodeMessage(EncodeMessage(SamplePullReply()) + garbage, &reply, "PullReply").ok());
  }
}

// Decodes `bytes` as M and expects a quick bounded-count error.
template <class M>
void ExpectHugeCountRejected(const std::string& bytes, const char* what) {
  SCOPED_TRACE(what);
  const auto start = std::chrono::steady_clock::now();
  M message;
  Status s = DecodeMessage(bytes, &message, what);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  // The bound check, not a failed allocation or a read past the end.
  EXPECT_TRUE(Contains(s.message(), "exceeds")) << s;
  EXPECT_LT(elapsed, std::chrono::seconds(1));
}

TEST(Messages, HugeClaimedCountsAreRejectedWithoutAllocating) {
  const uint64_t huge = uint64_t{1} << 60;
  // PushRequest whose gradient vector claims 2^60 entries.
  ExpectHugeCountRejected<PushRequest>(Writer().PushHead(1, 2).Put<uint64_t>(huge).out,
                                       "push grads");
  // PullRequest whose name vector claims 2^60 names.
  ExpectHugeCountRejected<PullRequest>(Writer().Put<uint64_t>(huge).out, "pull names");
  // PullRequest with one name claiming 2^60 bytes.
  ExpectHugeCountRejected<PullRequest>(Writer().Put<uint64_t>(1).Put<uint64_t>(huge).out, "pull name length");
  // PushRequest with one gradient whose name claims 2^60 bytes, then whose rank does.
  ExpectHugeCountRejected<PushRequest>(
      Writer().PushHead(1, 2).Put<uint64_t>(1).Put<uint64_t>(huge).out, "grad name length");
  ExpectHugeCountRejected<PushRequest>(
      Writer().PushHead(1, 2).Put<uint64_t>(1).Str("g").Put<uint8_t>(1).Put<uint64_t>(huge).out,
      "grad rank");
  // PullReply whose status text claims 2^60 bytes; whose tensor vector claims 2^60.
  ExpectHugeCountRejected<PullReply>(Writer().Put<int32_t>(2).Put<uint64_t>(huge).out, "status text");
  ExpectHugeCountRejected<PullReply>(Writer().Put<int32_t>(0).Str("").Put<uint64_t>(huge).out, "pulled tensors");

  // CreateRequest: patch the encoded shard count, then the first spec's name length.
  CreateRequest req = SampleCreate();
  req.mode.consistency = Consistency::kSync;
  std::string bytes = EncodeMessage(req);
  // the mode: consistency (one byte), num_workers, sync_timeout_ms, missing_workers (one byte), staleness
  const size_t optimizer_bytes = 1 + 4 + 8 + 1 + 4;
  ASSERT_EQ(GetAt<uint64_t>(bytes, optimizer_bytes), 2u);
  std::string patched = bytes;
  PutAt<uint64_t>(patched, optimizer_bytes, huge);
  ExpectHugeCountRejected<CreateRequest>(patched, "shards");
  patched = bytes;
  ASSERT_EQ(GetAt<uint64_t>(bytes, optimizer_bytes + 8), req.shards[0].spec.name.size());
  PutAt<uint64_t>(patched, optimizer_bytes + 8, huge);
  ExpectHugeCountRejected<CreateRequest>(patched, "spec name");
  // Any count past the bound, not just huge ones.
  PutAt<uint64_t>(patched, optimizer_bytes + 8, wire::kMaxName + 1);
  ExpectHugeCountRejected<CreateRequest>(patched, "spec name just over the bound");
  // A consistency that is neither async nor sync.
  patched = bytes;
  PutAt<uint8_t>(patched, 0, 7);
  CreateRequest decoded;
  const Status bad_mode = DecodeMessage(patched, &decoded, "CreateVariables");
  EXPECT_EQ(bad_mode.code(), StatusCode::kInvalidArgument) << bad_mode;
  EXPECT_TRUE(Contains(bad_mode.message(), "consistency 7 is not async, sync or ssp")) << bad_mode;
  // Optimizer kind over its 32-byte bound.
  OptimizerSpec opt;
  std::string opt_bytes = EncodeMessage(opt);
  PutAt<uint64_t>(opt_bytes, 0, huge);
  ExpectHugeCountRejected<OptimizerSpec>(opt_bytes, "optimizer kind");
}

TEST(Messages, CountsWithinTheBoundButMissingElementsFailQuickly) {
  const auto start = std::chrono::steady_clock::now();
  PushRequest push;
  Status s = DecodeMessage(Writer().PushHead(1, 2).Put<uint64_t>(wire::kMaxEntries).out, &push,
                           "PushRequest");
  EXPECT_FALSE(s.ok());
  PullRequest pull;
  EXPECT_FALSE(DecodeMessage(Writer().Put<uint64_t>(wire::kMaxEntries).out, &pull, "PullRequest").ok());
  PullRequest name;
  EXPECT_FALSE(DecodeMessage(Writer().Put<uint64_t>(1).Put<uint64_t>(wire::kMaxName).out, &name, "PullRequest").ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

// A bool arrives as one byte; anything but 0 or 1 is not a bool, and reading
// such a value is undefined behaviour. Run in a child: under UBSan the
// decoder itself may abort.
TEST(MessagesDeathTest, DecodingRejectsABoolByteOtherThanZeroOrOne) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  OptimizerSpec req;
  req.kind = "sgd";
  req.nesterov = false;
  std::string bytes = EncodeMessage(req);
  const size_t nesterov_at = 8 + 3 + 8 * 2;  // after kind, learning_rate, momentum
  ASSERT_EQ(bytes[nesterov_at], '\0');
  bytes[nesterov_at] = 2;
  EXPECT_EXIT(
      {
        OptimizerSpec back;
        Status s = DecodeMessage(bytes, &back, "OptimizerSpec");
        std::_Exit(s.ok() ? 1 : 0);
      },
      testing::ExitedWithCode(0), "");
}

// --- TensorDesc validation -----------------------------------------------------

TEST(ValidateTensorDesc, AcceptsADescInsideTheDataSection) {
  EXPECT_TRUE(ValidateTensorDesc(Desc("w", DType::kFloat32, {2, 3}, 0, 0), 24).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc("w", DType::kFloat32, {2, 3}, 4, 8), 32).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc("s", DType::kInt64, {}, 0, 16), 24).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc("e", DType::kFloat32, {0, 3}, 0, 24), 24).ok());  // empty, at the end
}

TEST(ValidateTensorDesc, RejectsBytesNotMatchingTheShape) {
  for (uint64_t bytes : {uint64_t{0}, uint64_t{20}, uint64_t{23}, uint64_t{25}, uint64_t{28}}) {
    TensorDesc d = Desc("w", DType::kFloat32, {2, 3}, 0, 0);
    d.bytes = bytes;
    Status s = ValidateTensorDesc(d, 1024);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bytes;
  }
  TensorDesc l = Desc("l", DType::kInt64, {3}, 0, 0);
  l.bytes = 12;  // the float32 size
  EXPECT_FALSE(ValidateTensorDesc(l, 1024).ok());
}

TEST(ValidateTensorDesc, RejectsRangesOutsideTheDataSection) {
  // Ends one byte past the section.
  EXPECT_FALSE(ValidateTensorDesc(Desc("w", DType::kFloat32, {2, 3}, 0, 4), 27).ok());
  // Starts past the section.
  EXPECT_FALSE(ValidateTensorDesc(Desc("w", DType::kFloat32, {1}, 0, 32), 24).ok());
  EXPECT_FALSE(ValidateTensorDesc(Desc("e", DType::kFloat32, {0}, 0, 28), 24).ok());
  // No data section at all.
  EXPECT_FALSE(ValidateTensorDesc(Desc("w", DType::kFloat32, {1}, 0, 0), 0).ok());
  // offset + bytes wraps around: UINT64_MAX - 7 + 24 = 16 (mod 2^64) would look in range.
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  for (uint64_t offset : {max, max - 3, max - 7, max - 23, uint64_t{1} << 63}) {
    Status s = ValidateTensorDesc(Desc("w", DType::kFloat32, {2, 3}, 0, offset), 1024);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << offset;
  }
  // Wrapping within an 8-aligned offset for int64.
  EXPECT_FALSE(ValidateTensorDesc(Desc("l", DType::kInt64, {4}, 0, max - 15), 64).ok());
}

TEST(ValidateTensorDesc, RejectsOffsetsMisalignedForTheDType) {
  for (uint64_t offset : {1, 2, 3, 5, 6, 7}) {
    EXPECT_FALSE(ValidateTensorDesc(Desc("w", DType::kFloat32, {2}, 0, offset), 64).ok()) << offset;
  }
  EXPECT_TRUE(ValidateTensorDesc(Desc("w", DType::kFloat32, {2}, 0, 4), 64).ok());
  EXPECT_FALSE(ValidateTensorDesc(Desc("l", DType::kInt64, {2}, 0, 4), 64).ok());
  EXPECT_FALSE(ValidateTensorDesc(Desc("l", DType::kInt64, {2}, 0, 12), 64).ok());
  EXPECT_TRUE(ValidateTensorDesc(Desc("l", DType::kInt64, {2}, 0, 8), 64).ok());
}

TEST(ValidateTensorDesc, RejectsInvalidDTypeBytes) {
  for (int raw : {0, 3, 4, 128, 255}) {
    TensorDesc d = Desc("w", DType::kFloat32, {2}, 0, 0);
    d.dtype = static_cast<DType>(raw);
    d.bytes = 8;
    Status s = ValidateTensorDesc(d, 64);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << raw;
  }
}

TEST(ValidateTensorDesc, RejectsBadShapesAndNegativeRowBegin) {
  TensorDesc negative = Desc("w", DType::kFloat32, {2}, 0, 0);
  negative.shape = {-2};
  negative.bytes = 0;
  EXPECT_FALSE(ValidateTensorDesc(negative, 64).ok());

  TensorDesc overflow = Desc("w", DType::kFloat32, {1}, 0, 0);
  overflow.shape = {int64_t{1} << 40, int64_t{1} << 40};
  overflow.bytes = 0;  // what a wrapped product would give
  EXPECT_FALSE(ValidateTensorDesc(overflow, 64).ok());

  TensorDesc rank9 = Desc("w", DType::kFloat32, Shape(9, 1), 0, 0);
  EXPECT_FALSE(ValidateTensorDesc(rank9, 64).ok());

  EXPECT_FALSE(ValidateTensorDesc(Desc("w", DType::kFloat32, {2}, -1, 0), 64).ok());
}

TEST(ValidateTensorDesc, ValidatedDescsViewTheFramesDataWithoutCopying) {
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  std::string grads(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  PushRequest push;
  push.grads.push_back(Desc("a", DType::kFloat32, {2, 2}, 0, 0));
  push.grads.push_back(Desc("b", DType::kFloat32, {2}, 0, 16));
  OutFrame out = MakeFrame(static_cast<uint16_t>(FrameType::kPush), 1, EncodeMessage(push), {grads});
  StatusOr<InFrame> in = DecodeFrame(SerializeFrame(out), FrameLimits{});
  ASSERT_TRUE(in.ok()) << in.status();
  PushRequest back;
  ASSERT_TRUE(DecodeMessage(in->control, &back, "PushRequest").ok());
  ASSERT_EQ(back.grads.size(), 2u);
  for (const TensorDesc& d : back.grads) ASSERT_TRUE(ValidateTensorDesc(d, in->data_len).ok()) << d.name;
  Tensor a = ViewTensor(back.grads[0], in->payload, in->data);
  Tensor b = ViewTensor(back.grads[1], in->payload, in->data);
  EXPECT_EQ(a.raw(), in->data);
  EXPECT_EQ(a.matrix()(1, 1), 4.0f);
  EXPECT_EQ(b.shape(), (Shape{2}));
  EXPECT_EQ(b.flat()(0), 5.0f);
  EXPECT_EQ(b.flat()(1), 6.0f);
  EXPECT_EQ(a.owner().get(), static_cast<const void*>(in->payload.get()));
}

}  // namespace
}  // namespace cairn
