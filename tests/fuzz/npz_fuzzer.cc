// Fuzzes the .npz writer (launch/npz.h) by round trip: arrays made from the
// input (names of any bytes and lengths, float32 and int64, ranks 0 to 4,
// empty dims) are written with an NpzWriter (libzip underneath), with
// member sizes stated up front or not (then Zip64 local headers), and the
// archive is read back by the independent zip + .npy reader below.
//
// launch/npz.h has no reader of its own (Cairn only exports), so reading
// arbitrary bytes is not a Cairn surface; the reader here follows the zip
// (APPNOTE 6.3) and .npy (format 1.0/2.0) specifications, not npz.cc.
//
// Properties: Add refuses exactly the names npz.h says (empty, repeated,
// longer than a zip name may be, holding a NUL) with InvalidArgument; Finish's archive
// holds exactly the accepted arrays, in order, with their dtypes, shapes
// and bits, consistent sizes, offsets, CRCs and Zip64 records; a writer
// destroyed before Finish leaves no file behind.
#include <dirent.h>
#include <cstdio>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "launch/npz.h"
#include "tests/fuzz/fuzz_check.h"

namespace cairn {
namespace {

// ---- Reading an archive back ----

struct ReadArray {
  std::string name;
  std::string descr;
  bool fortran_order = true;
  Shape shape;
  std::string data;
};

class Bytes {
 public:
  explicit Bytes(const std::string& b) : b_(b) {}
  bool Has(uint64_t at, uint64_t n) const { return at <= b_.size() && n <= b_.size() - at; }
  template <typename T> T Get(uint64_t at) const {
    FUZZ_CHECK(Has(at, sizeof(T)), "a zip field lies past the end of the archive");
    T v;
    std::memcpy(&v, b_.data() + at, sizeof(T));
    return v;
  }
  std::string Str(uint64_t at, uint64_t n) const {
    FUZZ_CHECK(Has(at, n), "a zip name or member lies past the end of the archive");
    return b_.substr(at, n);
  }
  uint64_t size() const { return b_.size(); }

 private:
  const std::string& b_;
};

// A Zip64 extra field holding `count` u64 values (none: no field); returns
// them.
std::vector<uint64_t> Zip64Extra(const std::string& extra, size_t count) {
  if (count == 0) {
    FUZZ_CHECK(extra.empty(), "an extra field without Zip64 values");
    return {};
  }
  FUZZ_CHECK(extra.size() == 4 + 8 * count, "a Zip64 extra field of the wrong size");
  uint16_t tag, len;
  std::memcpy(&tag, extra.data(), 2);
  std::memcpy(&len, extra.data() + 2, 2);
  FUZZ_CHECK(tag == 1 && len == 8 * count, "a bad Zip64 extra field header");
  std::vector<uint64_t> v(count);
  std::memcpy(v.data(), extra.data() + 4, 8 * count);
  return v;
}

// "(3, 4)", "(5,)", "()" -> shape.
Shape ParseShapeTuple(const std::string& t) {
  FUZZ_CHECK(t.size() >= 2 && t.front() == '(' && t.back() == ')', "the .npy shape is not a tuple");
  Shape s;
  std::string body = t.substr(1, t.size() - 2);
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find(',', at);
    if (end == std::string::npos) end = body.size();
    std::string dim = body.substr(at, end - at);
    if (!dim.empty() && dim[0] == ' ') dim.erase(0, 1);
    if (!dim.empty()) s.push_back(std::stoll(dim));
    at = end + 1;
  }
  if (s.size() == 1) FUZZ_CHECK(body.back() == ',', "a 1-tuple without its trailing comma");
  return s;
}

ReadArray ParseNpy(const std::string& file_name, const std::string& npy) {
  ReadArray a;
  FUZZ_CHECK(file_name.size() > 4 && file_name.substr(file_name.size() - 4) == ".npy", "a member not named .npy");
  a.name = file_name.substr(0, file_name.size() - 4);
  FUZZ_CHECK(npy.size() >= 10 && npy.compare(0, 6, "\x93NUMPY") == 0, "a member without the .npy magic");
  const int major = npy[6];
  FUZZ_CHECK((major == 1 || major == 2) && npy[7] == 0, "an .npy version other than 1.0 and 2.0");
  uint32_t header_len = 0;
  const size_t prefix = major == 1 ? 10 : 12;
  FUZZ_CHECK(npy.size() >= prefix, "a truncated .npy preamble");
  std::memcpy(&header_len, npy.data() + 8, major == 1 ? 2 : 4);
  FUZZ_CHECK(npy.size() >= prefix + header_len, "a truncated .npy header");
  FUZZ_CHECK((prefix + header_len) % 64 == 0, "the .npy data is not 64-byte aligned");
  const std::string header = npy.substr(prefix, header_len);
  FUZZ_CHECK(!header.empty() && header.back() == '\n', "the .npy header does not end with a newline");
  const size_t descr = header.find("'descr': '");
  const size_t order = header.find("'fortran_order': ");
  const size_t shape = header.find("'shape': (");
  FUZZ_CHECK(descr != std::string::npos && order != std::string::npos && shape != std::string::npos,
             "the .npy header lacks a key");
  a.descr = header.substr(descr + 10, 3);
  a.fortran_order = header.compare(order + 17, 4, "True") == 0;
  const size_t close = header.find(')', shape);
  FUZZ_CHECK(close != std::string::npos, "the .npy shape is not closed");
  a.shape = ParseShapeTuple(header.substr(shape + 9, close - shape - 8));
  a.data = npy.substr(prefix + header_len);
  return a;
}

// Where the central directory is, from the end records.
struct Directory {
  uint64_t count = 0;
  uint64_t offset = 0;
  uint64_t end = 0;  // where the (Zip64) end records start
};

Directory ReadEndRecords(const Bytes& b) {
  constexpr uint64_t kEndBytes = 22, kLocatorBytes = 20, kZip64EndBytes = 56;
  FUZZ_CHECK(b.size() >= kEndBytes, "an archive shorter than its end record");
  const uint64_t end = b.size() - kEndBytes;
  FUZZ_CHECK(b.Get<uint32_t>(end) == 0x06054b50, "no end of central directory record at the end");
  FUZZ_CHECK(b.Get<uint16_t>(end + 4) == 0 && b.Get<uint16_t>(end + 6) == 0, "a multi-disk archive");
  FUZZ_CHECK(b.Get<uint16_t>(end + 8) == b.Get<uint16_t>(end + 10), "entry counts disagree");
  FUZZ_CHECK(b.Get<uint16_t>(end + 20) == 0, "an archive comment");
  Directory d{b.Get<uint16_t>(end + 10), b.Get<uint32_t>(end + 16), end};
  uint64_t size = b.Get<uint32_t>(end + 12);
  if (d.count == 0xFFFF || size == 0xFFFFFFFF || d.offset == 0xFFFFFFFF) {
    FUZZ_CHECK(end >= kLocatorBytes + kZip64EndBytes, "no room for the Zip64 records");
    const uint64_t locator = end - kLocatorBytes;
    FUZZ_CHECK(b.Get<uint32_t>(locator) == 0x07064b50, "no Zip64 end locator");
    const uint64_t z = b.Get<uint64_t>(locator + 8);
    FUZZ_CHECK(z == locator - kZip64EndBytes, "the Zip64 end record is not where its locator says");
    FUZZ_CHECK(b.Get<uint32_t>(z) == 0x06064b50 && b.Get<uint64_t>(z + 4) == 44, "a bad Zip64 end record");
    FUZZ_CHECK(b.Get<uint64_t>(z + 24) == b.Get<uint64_t>(z + 32), "Zip64 entry counts disagree");
    if (d.count != 0xFFFF) FUZZ_CHECK(d.count == b.Get<uint64_t>(z + 32), "the two end records' counts disagree");
    d = Directory{b.Get<uint64_t>(z + 32), b.Get<uint64_t>(z + 48), z};
    size = b.Get<uint64_t>(z + 40);
  }
  FUZZ_CHECK(d.offset <= d.end && size == d.end - d.offset, "the central directory's size or offset is wrong");
  return d;
}

// One central directory entry.
struct Entry {
  std::string name;
  uint16_t flags = 0;
  uint32_t crc = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
};

// Reads the entry at `*at` and moves `*at` past it.
Entry ReadCentralEntry(const Bytes& b, uint64_t* at) {
  const uint64_t c = *at;
  FUZZ_CHECK(b.Get<uint32_t>(c) == 0x02014b50, "a bad central header signature");
  FUZZ_CHECK(b.Get<uint16_t>(c + 10) == 0, "a compressed member");
  FUZZ_CHECK(b.Get<uint16_t>(c + 32) == 0, "a member comment");
  Entry e;
  e.flags = b.Get<uint16_t>(c + 8);
  e.crc = b.Get<uint32_t>(c + 16);
  const uint32_t csize32 = b.Get<uint32_t>(c + 20), usize32 = b.Get<uint32_t>(c + 24);
  const uint16_t name_len = b.Get<uint16_t>(c + 28), extra_len = b.Get<uint16_t>(c + 30);
  const uint32_t offset32 = b.Get<uint32_t>(c + 42);
  e.name = b.Str(c + 46, name_len);
  FUZZ_CHECK(csize32 == usize32, "a stored member whose sizes differ");
  const bool big_size = usize32 == 0xFFFFFFFF, big_offset = offset32 == 0xFFFFFFFF;
  // The Zip64 field holds the saturated values only: sizes, then offset.
  const std::vector<uint64_t> z = Zip64Extra(b.Str(c + 46 + name_len, extra_len), (big_size ? 2 : 0) + big_offset);
  if (big_size) FUZZ_CHECK(z[0] == z[1], "a stored member whose sizes differ");
  e.size = big_size ? z[0] : usize32;
  e.offset = big_offset ? z.back() : offset32;
  *at = c + 46 + name_len + extra_len;
  return e;
}

// The member `e` names: its local header must agree with `e`. Returns the
// offset just past its data, and its .npy bytes in `npy`.
uint64_t ReadMember(const Bytes& b, const Entry& e, std::string* npy) {
  const uint64_t l = e.offset;
  FUZZ_CHECK(b.Get<uint32_t>(l) == 0x04034b50, "a bad local header signature");
  FUZZ_CHECK(b.Get<uint16_t>(l + 6) == e.flags, "local and central flags differ");
  FUZZ_CHECK(b.Get<uint32_t>(l + 14) == e.crc, "local and central CRCs differ");
  const uint16_t name_len = b.Get<uint16_t>(l + 26), extra_len = b.Get<uint16_t>(l + 28);
  FUZZ_CHECK(b.Str(l + 30, name_len) == e.name, "local and central names differ");
  if (b.Get<uint32_t>(l + 22) == 0xFFFFFFFF) {
    const std::vector<uint64_t> z = Zip64Extra(b.Str(l + 30 + name_len, extra_len), 2);
    FUZZ_CHECK(z[0] == e.size && z[1] == e.size, "local Zip64 sizes differ from the central ones");
  } else {
    FUZZ_CHECK(b.Get<uint32_t>(l + 22) == e.size && b.Get<uint32_t>(l + 18) == e.size,
               "local sizes differ from the central ones");
  }
  const uint64_t data_at = l + 30 + name_len + extra_len;
  *npy = b.Str(data_at, e.size);
  FUZZ_CHECK(crc32_z(0, reinterpret_cast<const Bytef*>(npy->data()), npy->size()) == e.crc, "a member's CRC is wrong");
  return data_at + e.size;
}

// Reads the arrays of an archive, checking its structure on the way:
// members back to back from offset 0, then the directory, then the end.
std::vector<ReadArray> ReadNpz(const std::string& archive) {
  const Bytes b(archive);
  const Directory dir = ReadEndRecords(b);
  std::vector<ReadArray> arrays;
  uint64_t at = dir.offset, next_member = 0;
  for (uint64_t i = 0; i < dir.count; ++i) {
    const Entry e = ReadCentralEntry(b, &at);
    FUZZ_CHECK(e.offset == next_member, "members are not contiguous from the archive's start");
    std::string npy;
    next_member = ReadMember(b, e, &npy);
    arrays.push_back(ParseNpy(e.name, npy));
  }
  FUZZ_CHECK(next_member == dir.offset, "bytes between the last member and the central directory");
  FUZZ_CHECK(at == dir.end, "the central directory holds more than its entries");
  return arrays;
}

// ---- The round trip ----

std::string ReadFile(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY);
  FUZZ_CHECK(fd >= 0, "Finish succeeded but the archive cannot be opened");
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

size_t FilesIn(const std::string& dir) {
  size_t n = 0;
  DIR* d = ::opendir(dir.c_str());
  FUZZ_CHECK(d != nullptr, "the scratch directory is gone");
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

// A directory for this process's archives, on tmpfs where there is one
// (Finish fsyncs); removed at exit.
const std::string& ScratchDir() {
  static const std::string dir = [] {
    std::string templ = (::access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm") : std::string("/tmp")) +
                        "/cairn_fuzz_npz.XXXXXX";
    FUZZ_CHECK(::mkdtemp(templ.data()) != nullptr, "cannot make a scratch directory");
    return templ;
  }();
  static const int cleanup = std::atexit([] { ::rmdir(dir.c_str()); });
  (void)cleanup;
  return dir;
}

NpzArray MakeArray(FuzzedDataProvider& in) {
  NpzArray a;
  // Rarely, a name at the zip limit: the longest allowed (written: 64 KiB
  // names dominate the time, so seldom) or one byte more (refused). Tests
  // for 63, not 0: an exhausted FuzzedDataProvider returns the minimum.
  if (in.ConsumeIntegralInRange(0, 63) == 63) {
    a.name.assign(0xFFFF - 4 + (in.ConsumeIntegralInRange(0, 3) != 0), 'n');
  } else {
    a.name = in.ConsumeRandomLengthString(64);
  }
  const DType dtype = in.ConsumeBool() ? DType::kFloat32 : DType::kInt64;
  Shape shape(in.ConsumeIntegralInRange(0, 4));
  for (int64_t& d : shape) d = in.ConsumeIntegralInRange<int64_t>(0, 6);
  a.value = Tensor(dtype, shape);
  const std::string values = in.ConsumeBytesAsString(a.value.byte_size());
  std::memcpy(a.value.raw(), values.data(), values.size());
  return a;
}

bool ExpectAccepted(const NpzArray& a, const std::set<std::string>& accepted) {
  return !a.name.empty() && !accepted.count(a.name) && a.name.size() + 4 <= 0xFFFF &&
         a.name.find('\0') == std::string::npos;
}

void RoundTrip(FuzzedDataProvider& in) {
  const std::string path = ScratchDir() + "/a.npz";
  // Members whose sizes libzip learns only as it reads them (Zip64 local
  // headers), or sizes stated up front.
  const bool sizes_unknown = in.ConsumeBool();
  const bool abandon = in.ConsumeIntegralInRange(0, 7) == 7;
  StatusOr<std::unique_ptr<NpzWriter>> writer =
      sizes_unknown ? npz_internal::CreateNpzWriter(path, /*sizes_unknown=*/true) : NpzWriter::Create(path);
  FUZZ_CHECK(writer.ok(), "cannot create a writer in the scratch directory");

  std::vector<NpzArray> written;
  std::set<std::string> accepted;
  for (int i = 0, n = in.ConsumeIntegralInRange(0, 6); i < n; ++i) {
    NpzArray a = MakeArray(in);
    const bool expected = ExpectAccepted(a, accepted);
    Status s = (*writer)->Add(a);
    if (s.ok() != expected) std::fprintf(stderr, "Add('%s'): %s\n", a.name.c_str(), s.ToString().c_str());
    FUZZ_CHECK(s.ok() == expected, expected ? "a valid array was refused" : "an invalid array name was accepted");
    if (!s.ok()) {
      FUZZ_CHECK(s.code() == StatusCode::kInvalidArgument, "a refused name that is not InvalidArgument");
      continue;
    }
    accepted.insert(a.name);
    written.push_back(std::move(a));
  }
  if (abandon) {
    writer->reset();
    FUZZ_CHECK(FilesIn(ScratchDir()) == 0, "an abandoned writer left a file behind");
    return;
  }
  FUZZ_CHECK((*writer)->Finish().ok(), "Finish failed");
  FUZZ_CHECK((*writer)->Finish().code() == StatusCode::kFailedPrecondition, "a second Finish did not fail");
  FUZZ_CHECK(!(*writer)->Add(NpzArray{"late", Tensor()}).ok(), "an Add after Finish succeeded");
  writer->reset();
  FUZZ_CHECK(FilesIn(ScratchDir()) == 1, "the archive is not the only file left");

  const std::vector<ReadArray> read = ReadNpz(ReadFile(path));
  ::unlink(path.c_str());
  FUZZ_CHECK(read.size() == written.size(), "the archive holds another number of arrays");
  for (size_t i = 0; i < read.size(); ++i) {
    const NpzArray& w = written[i];
    FUZZ_CHECK(read[i].name == w.name, "an array's name changed");
    FUZZ_CHECK(read[i].descr == (w.value.dtype() == DType::kFloat32 ? "<f4" : "<i8"), "an array's dtype changed");
    FUZZ_CHECK(!read[i].fortran_order, "an array is not in C order");
    FUZZ_CHECK(read[i].shape == w.value.shape(), "an array's shape changed");
    FUZZ_CHECK(read[i].data.size() == w.value.byte_size() &&
                   std::memcmp(read[i].data.data(), w.value.raw(), w.value.byte_size()) == 0,
               "an array's bytes changed");
  }
}

}  // namespace
}  // namespace cairn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  cairn::RoundTrip(in);
  return 0;
}
