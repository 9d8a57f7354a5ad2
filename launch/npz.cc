#include "launch/npz.h"

#include <fcntl.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <set>

#include "common/file_io.h"

namespace cairn {
namespace {

// .npy fields are little-endian, and tensor bytes are written as they are
// in memory under the descr '<f4' / '<i8'.
static_assert(std::endian::native == std::endian::little, "npz writer assumes a little-endian host");

constexpr time_t kEpoch1980 = 315532800;  // 1980-01-01 UTC, the zip format's first date: archives are reproducible

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
  const uint32_t len = static_cast<uint32_t>(header_len);
  out.append(reinterpret_cast<const char*>(&len), v1 ? 2 : 4);
  out += dict;
  out.append(header_len - dict.size() - 1, ' ');
  out += '\n';
  return out;
}

Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open '" + path + "' to sync it");
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus(err, "cannot sync '" + path + "'");
  return Status::OK();
}

// `bytes` to `tmp`, synced, renamed over `path`, its directory synced.
Status WriteFileAtomically(const std::string& tmp, const std::string& path, const std::string& bytes) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "cannot create '" + tmp + "'");
  const bool written = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const Status s = ErrnoStatus(written ? errno : err, "cannot write '" + path + "'");
    ::unlink(tmp.c_str());
    return s;
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return SyncPath(parent.empty() ? "." : parent.string(), O_RDONLY | O_DIRECTORY);
}

}  // namespace

struct NpzWriter::State {
  // One member: libzip reads it through Read (a zip_source_function) when
  // the archive is closed.
  struct Member {
    State* state = nullptr;
    std::string name;            // the array's
    NpzLoader load;
    int64_t size = -1;           // header + data bytes, if known before loading (-1: not)
    // While libzip reads it:
    std::string header;
    Tensor value;
    uint64_t at = 0;
    zip_error_t error;
  };

  ~State() {
    if (archive) zip_discard(archive);  // nothing was written: libzip writes only on close
    if (!finished) ::unlink(tmp.c_str());
    for (Member& m : members) zip_error_fini(&m.error);
  }

  static zip_int64_t Read(void* userdata, void* data, zip_uint64_t len, zip_source_cmd_t cmd);

  std::string path;
  std::string tmp;  // libzip's output, beside `path`: synced, then renamed over it
  bool sizes_unknown = false;
  zip_t* archive = nullptr;
  std::deque<Member> members;  // stable addresses: libzip holds pointers to them
  std::set<std::string> names;
  bool finished = false;
  Status failed;  // a loader's error (the first): reported by Finish
};

zip_int64_t NpzWriter::State::Read(void* userdata, void* data, zip_uint64_t len, zip_source_cmd_t cmd) {
  Member& m = *static_cast<Member*>(userdata);
  switch (cmd) {
    case ZIP_SOURCE_OPEN: {
      StatusOr<Tensor> value = m.load();
      Status s = value.status();
      if (s.ok() && Descr(value->dtype()) == nullptr) s = InvalidArgument("an unsupported dtype");
      if (!s.ok()) {
        if (m.state->failed.ok()) m.state->failed = s.WithContext("array '" + m.name + "'");
        zip_error_set(&m.error, ZIP_ER_READ, 0);
        return -1;
      }
      m.value = std::move(*value);
      m.header = NpyHeader(m.value);
      m.at = 0;
      return 0;
    }
    case ZIP_SOURCE_READ: {
      const uint64_t total = m.header.size() + m.value.byte_size();
      const uint64_t n = std::min<uint64_t>(len, total - m.at);
      char* out = static_cast<char*>(data);
      for (uint64_t done = 0; done < n;) {
        const uint64_t at = m.at + done;
        if (at < m.header.size()) {
          const uint64_t k = std::min<uint64_t>(n - done, m.header.size() - at);
          std::memcpy(out + done, m.header.data() + at, k);
          done += k;
        } else {
          std::memcpy(out + done, static_cast<const char*>(m.value.raw()) + (at - m.header.size()), n - done);
          done = n;
        }
      }
      m.at += n;
      return static_cast<zip_int64_t>(n);
    }
    case ZIP_SOURCE_CLOSE:
      m.value = Tensor();  // written: the next array may take its place in memory
      m.header.clear();
      return 0;
    case ZIP_SOURCE_STAT: {
      zip_stat_t* st = ZIP_SOURCE_GET_ARGS(zip_stat_t, data, len, &m.error);
      if (!st) return -1;
      zip_stat_init(st);
      st->mtime = kEpoch1980;
      st->valid |= ZIP_STAT_MTIME;
      if (m.size >= 0) {
        st->size = static_cast<zip_uint64_t>(m.size);
        st->valid |= ZIP_STAT_SIZE;
      }
      return sizeof(zip_stat_t);
    }
    case ZIP_SOURCE_ERROR: return zip_error_to_data(&m.error, data, len);
    case ZIP_SOURCE_FREE: return 0;  // the writer owns the member
    case ZIP_SOURCE_SUPPORTS:
      return zip_source_make_command_bitmap(ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                                            ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, -1);
    default:
      zip_error_set(&m.error, ZIP_ER_OPNOTSUPP, 0);
      return -1;
  }
}

NpzWriter::NpzWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}

NpzWriter::~NpzWriter() = default;

Status NpzWriter::Add(const NpzArray& a) {
  if (Descr(a.value.dtype()) == nullptr) {
    return InvalidArgument("npz export to '" + state_->path + "': array '" + a.name + "' has an unsupported dtype");
  }
  RETURN_IF_ERROR(Add(a.name, [value = a.value]() -> StatusOr<Tensor> { return value; }));
  if (!state_->sizes_unknown) {
    State::Member& m = state_->members.back();
    m.size = static_cast<int64_t>(NpyHeader(a.value).size() + a.value.byte_size());
  }
  return Status::OK();
}

Status NpzWriter::Add(const std::string& name, NpzLoader load) {
  State& st = *state_;
  const std::string where = "npz export to '" + st.path + "': ";
  if (st.finished || !st.archive) return FailedPrecondition(where + "the archive is already finished");
  if (name.empty()) return InvalidArgument(where + "an array has an empty name");
  if (st.names.count(name)) return InvalidArgument(where + "array name '" + name + "' appears twice");
  if (name.find('\0') != std::string::npos) return InvalidArgument(where + "an array name holds a NUL byte");
  if (name.size() + 4 > 0xFFFF) {
    return InvalidArgument(where + "array name '" + name.substr(0, 64) + "...' is longer than a zip file name may be");
  }
  State::Member& m = st.members.emplace_back();
  m.state = &st;
  m.name = name;
  m.load = std::move(load);
  zip_error_init(&m.error);
  // The name's bytes as they are; libzip flags it UTF-8 when it is valid
  // UTF-8 and not ASCII (what numpy then decodes), as zip writers do.
  zip_source_t* source = zip_source_function(st.archive, &State::Read, &m);
  const zip_int64_t index =
      source ? zip_file_add(st.archive, (name + ".npy").c_str(), source, ZIP_FL_ENC_GUESS) : -1;
  if (index < 0 || zip_set_file_compression(st.archive, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) {
    const std::string why = zip_strerror(st.archive);
    if (source && index < 0) zip_source_free(source);
    if (index >= 0) zip_delete(st.archive, static_cast<zip_uint64_t>(index));
    zip_error_fini(&m.error);
    st.members.pop_back();
    return Internal(where + "libzip cannot add '" + name + "': " + why);
  }
  st.names.insert(name);
  return Status::OK();
}

Status NpzWriter::Finish() {
  State& st = *state_;
  const std::string where = "npz export to '" + st.path + "': ";
  if (st.finished || !st.archive) return FailedPrecondition(where + "the archive is already finished");
  if (st.members.empty()) {
    // libzip writes no file for an empty archive (it removes one): an
    // export of nothing is the empty zip, its end record alone.
    zip_discard(st.archive);
    st.archive = nullptr;
    const std::string eocd = std::string("PK\x05\x06", 4) + std::string(18, '\0');
    RETURN_IF_ERROR(WriteFileAtomically(st.tmp, st.path, eocd));
    st.finished = true;
    return Status::OK();
  }
  // libzip writes every member now, in order, to the temporary file (it
  // syncs nothing): synced here before it replaces the path.
  if (zip_close(st.archive) != 0) {
    Status s = st.failed.ok() ? Internal(where + "libzip: " + zip_strerror(st.archive)) : st.failed;
    zip_discard(st.archive);  // libzip rolled its own write back; ~State removes st.tmp
    st.archive = nullptr;
    return s;
  }
  st.archive = nullptr;
  RETURN_IF_ERROR(SyncPath(st.tmp, O_RDONLY));
  if (::rename(st.tmp.c_str(), st.path.c_str()) != 0) {
    return ErrnoStatus(errno, "cannot rename '" + st.tmp + "' to '" + st.path + "'");
  }
  st.finished = true;
  const std::filesystem::path parent = std::filesystem::path(st.path).parent_path();
  return SyncPath(parent.empty() ? "." : parent.string(), O_RDONLY | O_DIRECTORY);
}

StatusOr<std::unique_ptr<NpzWriter>> NpzWriter::Create(const std::string& path) {
  return npz_internal::CreateNpzWriter(path, /*sizes_unknown=*/false);
}

namespace npz_internal {

StatusOr<std::unique_ptr<NpzWriter>> CreateNpzWriter(const std::string& path, bool sizes_unknown) {
  // The temporary file exists from now on (libzip would create nothing
  // until the archive is closed): whether the directory takes a file shows
  // now, not after reading what may be gigabytes.
  auto state = std::make_unique<NpzWriter::State>();
  state->path = path;
  state->tmp = path + ".tmp-" + std::to_string(::getpid());
  state->sizes_unknown = sizes_unknown;
  const int fd = ::open(state->tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    state->finished = true;  // nothing of ours to remove
    return ErrnoStatus(errno, "cannot create '" + path + "'");
  }
  ::close(fd);
  int error = 0;
  state->archive = zip_open(state->tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  if (!state->archive) {
    zip_error_t e;
    zip_error_init_with_code(&e, error);
    const std::string why = zip_error_strerror(&e);
    zip_error_fini(&e);
    return Internal("cannot create '" + path + "' (libzip: " + why + ")");
  }
  return std::unique_ptr<NpzWriter>(new NpzWriter(std::move(state)));
}

Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays, bool sizes_unknown) {
  ASSIGN_OR_RETURN(std::unique_ptr<NpzWriter> writer, CreateNpzWriter(path, sizes_unknown));
  for (const NpzArray& a : arrays) RETURN_IF_ERROR(writer->Add(a));
  return writer->Finish();
}

}  // namespace npz_internal

Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays) {
  return npz_internal::WriteNpz(path, arrays, /*sizes_unknown=*/false);
}

}  // namespace cairn
