#include "launch/npz.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <set>
#include <system_error>

#include "common/file_io.h"

namespace cairn {

// Not part of the API: WriteNpz with the size at which Zip64 records start
// (0xFFFFFFFF, the zip format's own limit). Tests pass 0 so that every
// member and the archive take the Zip64 route without writing 4 GiB.
namespace npz_internal {
Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays, uint64_t zip64_limit);
}  // namespace npz_internal

namespace {

// Zip and .npy fields are little-endian, and tensor bytes are written as
// they are in memory under the descr '<f4' / '<i8'.
static_assert(std::endian::native == std::endian::little, "npz writer assumes a little-endian host");

constexpr uint64_t kZip32Limit = 0xFFFFFFFF;
constexpr uint16_t kVersionStored = 20;  // "version needed": 2.0, stored files
constexpr uint16_t kVersionZip64 = 45;   //                   4.5, Zip64 records
constexpr uint16_t kMadeByUnix = 3 << 8;
constexpr uint16_t kFlagUtf8Name = 1 << 11;
constexpr uint16_t kDosDate1980 = (0 << 9) | (1 << 5) | 1;  // 1980-01-01: archives are reproducible
constexpr size_t kCrcChunk = size_t{64} << 20;               // CRC and write the data in pieces this large

void Put16(std::string* out, uint16_t v) { out->append(reinterpret_cast<const char*>(&v), 2); }
void Put32(std::string* out, uint32_t v) { out->append(reinterpret_cast<const char*>(&v), 4); }
void Put64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }


const char* Descr(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "<f4";
    case DType::kInt64: return "<i8";
  }
  return nullptr;
}

// Python's repr of the shape tuple: "()", "(5,)", "(3, 4)".
std::string ShapeTuple(const Shape& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The .npy preamble: magic, version, header length, then the header dict
// padded with spaces and a newline so the data starts 64-byte aligned (as
// numpy.save pads it).
std::string NpyHeader(const Tensor& t) {
  const std::string dict =
      std::string("{'descr': '") + Descr(t.dtype()) + "', 'fortran_order': False, 'shape': " + ShapeTuple(t.shape()) +
      ", }";
  const bool v1 = dict.size() + 1 + 64 <= 0xFFFF;
  const size_t prefix = 6 + 2 + (v1 ? 2 : 4);
  const size_t header_len = dict.size() + 1 + (64 - (prefix + dict.size() + 1) % 64);
  std::string out = "\x93NUMPY";
  out += static_cast<char>(v1 ? 1 : 2);
  out += '\0';
  if (v1) Put16(&out, static_cast<uint16_t>(header_len)); else Put32(&out, static_cast<uint32_t>(header_len));
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out += '\n';
  return out;
}

struct Member {
  std::string file_name;     // the array's name + ".npy"
  std::string npy_header;
  uint64_t size = 0;         // npy_header plus the tensor's bytes (stored: compressed = uncompressed)
  uint64_t offset = 0;       // of its local header
  uint32_t crc = 0;
  bool zip64_sizes = false;  // size needs a Zip64 extra field
};

uint16_t Flags(const Member& m) {
  const bool ascii = std::all_of(m.file_name.begin(), m.file_name.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  return ascii ? 0 : kFlagUtf8Name;
}

uint32_t Field32(uint64_t v, bool zip64) { return zip64 ? 0xFFFFFFFF : static_cast<uint32_t>(v); }

// Local header; its CRC is patched in once the data is written
// (kLocalCrcOffset bytes in).
constexpr uint64_t kLocalCrcOffset = 14;
std::string LocalHeader(const Member& m) {
  std::string h;
  Put32(&h, 0x04034b50);
  Put16(&h, m.zip64_sizes ? kVersionZip64 : kVersionStored);
  Put16(&h, Flags(m));
  Put16(&h, 0);  // method: stored
  Put16(&h, 0);  // time
  Put16(&h, kDosDate1980);
  Put32(&h, m.crc);
  Put32(&h, Field32(m.size, m.zip64_sizes));
  Put32(&h, Field32(m.size, m.zip64_sizes));
  Put16(&h, static_cast<uint16_t>(m.file_name.size()));
  Put16(&h, m.zip64_sizes ? 20 : 0);
  h += m.file_name;
  if (m.zip64_sizes) {  // the local Zip64 field holds both sizes, always
    Put16(&h, 0x0001);
    Put16(&h, 16);
    Put64(&h, m.size);
    Put64(&h, m.size);
  }
  return h;
}

std::string CentralHeader(const Member& m, uint64_t zip64_limit) {
  const bool zip64_offset = m.offset >= zip64_limit;
  // The central Zip64 field holds only the values whose 32-bit field is
  // 0xFFFFFFFF, in this order.
  std::string extra;
  if (m.zip64_sizes) {
    Put64(&extra, m.size);
    Put64(&extra, m.size);
  }
  if (zip64_offset) Put64(&extra, m.offset);
  const bool zip64 = !extra.empty();
  std::string h;
  Put32(&h, 0x02014b50);
  Put16(&h, kMadeByUnix | kVersionZip64);
  Put16(&h, zip64 ? kVersionZip64 : kVersionStored);
  Put16(&h, Flags(m));
  Put16(&h, 0);  // method: stored
  Put16(&h, 0);  // time
  Put16(&h, kDosDate1980);
  Put32(&h, m.crc);
  Put32(&h, Field32(m.size, m.zip64_sizes));
  Put32(&h, Field32(m.size, m.zip64_sizes));
  Put16(&h, static_cast<uint16_t>(m.file_name.size()));
  Put16(&h, static_cast<uint16_t>(zip64 ? 4 + extra.size() : 0));
  Put16(&h, 0);  // comment length
  Put16(&h, 0);  // disk
  Put16(&h, 0);  // internal attributes
  Put32(&h, 0100644u << 16);  // external attributes: a regular file, rw-r--r--
  Put32(&h, Field32(m.offset, zip64_offset));
  h += m.file_name;
  if (zip64) {
    Put16(&h, 0x0001);
    Put16(&h, static_cast<uint16_t>(extra.size()));
    h += extra;
  }
  return h;
}

// The end of central directory record, preceded by the Zip64 end record and
// its locator when a count, size or offset does not fit.
std::string EndRecords(uint64_t count, uint64_t cd_offset, uint64_t cd_size, uint64_t zip64_limit) {
  const bool big_count = count >= std::min<uint64_t>(zip64_limit, 0xFFFF);
  const bool big_size = cd_size >= zip64_limit;
  const bool big_offset = cd_offset >= zip64_limit;
  std::string e;
  if (big_count || big_size || big_offset) {
    const uint64_t zip64_end_offset = cd_offset + cd_size;
    Put32(&e, 0x06064b50);
    Put64(&e, 44);  // size of the rest of this record
    Put16(&e, kMadeByUnix | kVersionZip64);
    Put16(&e, kVersionZip64);
    Put32(&e, 0);  // this disk
    Put32(&e, 0);  // disk with the central directory
    Put64(&e, count);
    Put64(&e, count);
    Put64(&e, cd_size);
    Put64(&e, cd_offset);
    Put32(&e, 0x07064b50);  // locator
    Put32(&e, 0);
    Put64(&e, zip64_end_offset);
    Put32(&e, 1);  // disks in total
  }
  Put32(&e, 0x06054b50);
  Put16(&e, 0);
  Put16(&e, 0);
  Put16(&e, big_count ? 0xFFFF : static_cast<uint16_t>(count));
  Put16(&e, big_count ? 0xFFFF : static_cast<uint16_t>(count));
  Put32(&e, Field32(cd_size, big_size));
  Put32(&e, Field32(cd_offset, big_offset));
  Put16(&e, 0);  // comment length
  return e;
}

// An open output file that names itself in errors.
class OutputFile {
 public:
  OutputFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~OutputFile() { if (fd_ >= 0) ::close(fd_); }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  uint64_t offset() const { return offset_; }

  Status Append(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoStatus(errno, "cannot write '" + path_ + "'");
      p += w;
      n -= static_cast<size_t>(w);
      offset_ += static_cast<uint64_t>(w);
    }
    return Status::OK();
  }
  Status Append(const std::string& s) { return Append(s.data(), s.size()); }

  Status Patch32(uint64_t offset, uint32_t v) {
    if (::pwrite(fd_, &v, 4, static_cast<off_t>(offset)) != 4) return ErrnoStatus(errno, "cannot write '" + path_ + "'");
    return Status::OK();
  }

  Status SyncAndClose() {
    const int fd = fd_;
    fd_ = -1;
    if (::fsync(fd) != 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "cannot sync '" + path_ + "'");
    }
    if (::close(fd) != 0) return ErrnoStatus(errno, "cannot close '" + path_ + "'");
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
  uint64_t offset_ = 0;
};

// Writes one member (local header, .npy header, `value`'s bytes) at the
// file's end, computing the CRC on the way, then patches the CRC into the
// local header.
Status WriteMember(OutputFile& out, const Tensor& value, Member& m) {
  m.offset = out.offset();
  RETURN_IF_ERROR(out.Append(LocalHeader(m)));
  uLong crc = crc32_z(0, reinterpret_cast<const Bytef*>(m.npy_header.data()), m.npy_header.size());
  RETURN_IF_ERROR(out.Append(m.npy_header));
  const char* data = static_cast<const char*>(value.raw());
  for (size_t done = 0, total = value.byte_size(); done < total;) {
    const size_t n = std::min(kCrcChunk, total - done);
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(data + done), n);
    RETURN_IF_ERROR(out.Append(data + done, n));
    done += n;
  }
  m.crc = static_cast<uint32_t>(crc);
  return out.Patch32(m.offset + kLocalCrcOffset, m.crc);
}

}  // namespace

struct NpzWriter::State {
  State(std::string path, std::string tmp, int fd, uint64_t zip64_limit)
      : path(std::move(path)), tmp(std::move(tmp)), out(fd, this->tmp), zip64_limit(zip64_limit) {}

  const std::string path;
  const std::string tmp;
  OutputFile out;
  const uint64_t zip64_limit;
  std::vector<Member> members;  // written so far
  std::set<std::string> names;
  bool finished = false;
  Status failed;  // the first write error: the archive cannot be completed after it
};

NpzWriter::NpzWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

NpzWriter::~NpzWriter() {
  if (!state_->finished) ::unlink(state_->tmp.c_str());
}

Status NpzWriter::Add(const NpzArray& a) {
  State& st = *state_;
  if (st.finished) return FailedPrecondition("npz export to '" + st.path + "': the archive is already finished");
  RETURN_IF_ERROR(st.failed);
  const std::string where = "npz export to '" + st.path + "': ";
  if (a.name.empty()) return InvalidArgument(where + "an array has an empty name");
  if (st.names.count(a.name)) return InvalidArgument(where + "array name '" + a.name + "' appears twice");
  if (a.name.size() + 4 > 0xFFFF) {
    return InvalidArgument(where + "array name '" + a.name.substr(0, 64) + "...' is longer than a zip file name may be");
  }
  if (Descr(a.value.dtype()) == nullptr) return InvalidArgument(where + "array '" + a.name + "' has an unsupported dtype");
  Member m;
  m.file_name = a.name + ".npy";
  m.npy_header = NpyHeader(a.value);
  m.size = m.npy_header.size() + a.value.byte_size();
  m.zip64_sizes = m.size >= st.zip64_limit;
  if (Status s = WriteMember(st.out, a.value, m); !s.ok()) return st.failed = s;
  st.names.insert(a.name);
  st.members.push_back(std::move(m));
  return Status::OK();
}

Status NpzWriter::Finish() {
  State& st = *state_;
  if (st.finished) return FailedPrecondition("npz export to '" + st.path + "': the archive is already finished");
  RETURN_IF_ERROR(st.failed);
  const uint64_t cd_offset = st.out.offset();
  std::string cd;
  for (const Member& m : st.members) cd += CentralHeader(m, st.zip64_limit);
  Status s = st.out.Append(cd);
  if (s.ok()) s = st.out.Append(EndRecords(st.members.size(), cd_offset, cd.size(), st.zip64_limit));
  if (s.ok()) s = st.out.SyncAndClose();
  if (s.ok() && ::rename(st.tmp.c_str(), st.path.c_str()) != 0) {
    s = ErrnoStatus(errno, "cannot rename '" + st.tmp + "' to '" + st.path + "'");
  }
  if (!s.ok()) return st.failed = s;
  st.finished = true;
  return Status::OK();
}

StatusOr<std::unique_ptr<NpzWriter>> NpzWriter::Create(const std::string& path) {
  return npz_internal::CreateNpzWriter(path, kZip32Limit);
}

namespace npz_internal {

StatusOr<std::unique_ptr<NpzWriter>> CreateNpzWriter(const std::string& path, uint64_t zip64_limit) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "cannot create '" + tmp + "'");
  return std::unique_ptr<NpzWriter>(new NpzWriter(std::make_unique<NpzWriter::State>(path, tmp, fd, zip64_limit)));
}

Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays, uint64_t zip64_limit) {
  ASSIGN_OR_RETURN(std::unique_ptr<NpzWriter> writer, CreateNpzWriter(path, zip64_limit));
  for (const NpzArray& a : arrays) RETURN_IF_ERROR(writer->Add(a));
  return writer->Finish();
}

}  // namespace npz_internal

Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays) {
  return npz_internal::WriteNpz(path, arrays, kZip32Limit);
}

}  // namespace cairn
