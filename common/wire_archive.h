// Bounded Cereal loading for anything that arrives from a peer.
//
// Cereal's stock std::string / std::vector loaders resize to whatever count
// the bytes claim, so one forged length could make a server allocate
// gigabytes. Wire types save with Cereal's stock format and load through these
// helpers, which check every count against a bound first.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "common/shape.h"
#include "common/status.h"

namespace cairn {

// Thrown inside a load only; DecodeMessage turns it into a Status.
struct WireFormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace wire {
constexpr size_t kMaxName = 256;
constexpr size_t kMaxMessageText = 64 * 1024;
constexpr size_t kMaxRank = 8;
constexpr size_t kMaxEntries = 1 << 20;
}  // namespace wire

template <class Archive>
uint64_t LoadCount(Archive& ar, size_t max, const char* what) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  if (n > max) {
    throw WireFormatError(std::string(what) + " count " + std::to_string(n) + " exceeds " + std::to_string(max));
  }
  return n;
}

// A bool from the wire: any byte but 0 or 1 is malformed (and undefined
// behaviour if copied into a bool).
template <class Archive>
void LoadBool(Archive& ar, bool& b, const char* what) {
  uint8_t byte = 0;
  ar(byte);
  if (byte > 1) throw WireFormatError(std::string(what) + " is not a bool (byte " + std::to_string(byte) + ")");
  b = byte == 1;
}

template <class Archive>
void LoadString(Archive& ar, std::string& s, size_t max, const char* what) {
  uint64_t n = LoadCount(ar, max, what);
  s.resize(n);
  if (n > 0) ar(cereal::binary_data(s.data(), n));
}

template <class Archive, class T>
void LoadVector(Archive& ar, std::vector<T>& v, size_t max, const char* what) {
  uint64_t n = LoadCount(ar, max, what);
  v.clear();
  v.reserve(n < 4096 ? n : 4096);  // grows as elements actually arrive
  for (uint64_t i = 0; i < n; ++i) {
    T item{};
    ar(item);
    v.push_back(std::move(item));
  }
}

// A Shape goes as a std::vector<int64_t> would: a size tag, then the dims.
template <class Archive>
void save(Archive& ar, const Shape& shape) {
  ar(cereal::make_size_tag(static_cast<cereal::size_type>(shape.size())));
  for (int64_t d : shape) ar(d);
}

template <class Archive>
void LoadVector(Archive& ar, Shape& shape, size_t max, const char* what) {
  uint64_t n = LoadCount(ar, max, what);
  shape.clear();
  for (uint64_t i = 0; i < n; ++i) {
    int64_t d = 0;
    ar(d);
    shape.push_back(d);
  }
}

template <class Archive>
void LoadStrings(Archive& ar, std::vector<std::string>& v, size_t max, const char* what) {
  uint64_t n = LoadCount(ar, max, what);
  v.clear();
  for (uint64_t i = 0; i < n; ++i) {
    std::string s;
    LoadString(ar, s, wire::kMaxName, what);
    v.push_back(std::move(s));
  }
}

// A read-only streambuf over bytes the caller keeps alive.
class ByteViewBuf : public std::streambuf {
 public:
  explicit ByteViewBuf(std::string_view bytes) {
    char* p = const_cast<char*>(bytes.data());
    setg(p, p, p + bytes.size());
  }
  size_t remaining() const { return static_cast<size_t>(egptr() - gptr()); }
};

template <class M>
std::string EncodeMessage(const M& message) {
  std::ostringstream os(std::ios::binary);
  {
    cereal::BinaryOutputArchive ar(os);
    ar(message);
  }
  return std::move(os).str();
}

// Decodes `bytes` into `message`; every byte must be consumed. Never throws.
template <class M>
Status DecodeMessage(std::string_view bytes, M* message, const char* type_name) {
  ByteViewBuf buf(bytes);
  std::istream is(&buf);
  try {
    cereal::BinaryInputArchive ar(is);
    ar(*message);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("malformed ") + type_name + " message: " + e.what());
  }
  if (buf.remaining() != 0) {
    return InvalidArgument(std::string("malformed ") + type_name + " message: " + std::to_string(buf.remaining()) +
                           " trailing bytes");
  }
  return Status::OK();
}

}  // namespace cairn
