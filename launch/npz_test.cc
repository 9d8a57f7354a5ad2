#include "launch/npz.h"

#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

namespace cairn {

namespace {

namespace fs = std::filesystem;

std::string Hex(const void* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const auto b = static_cast<const unsigned char*>(data)[i];
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}
std::string Hex(const std::string& s) { return Hex(s.data(), s.size()); }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The arrays every test writes: special float values, int64 extremes, a 0-d
// array, a name with '/', a non-ASCII name and an empty array.
std::vector<NpzArray> TestArrays() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  NpzArray w{"dense_0/W", Tensor::FromVector({3, 4}, {1.5f, -0.0f, nan, inf, -inf, 0.0f, 1e-45f, 3.4e38f, -2.25f,
                                                       1.0f / 3, 7, -8})};
  NpzArray ids{"ids", Tensor(DType::kInt64, {5})};
  const int64_t id_values[] = {std::numeric_limits<int64_t>::min(), -1, 0, 1, std::numeric_limits<int64_t>::max()};
  std::memcpy(ids.value.data<int64_t>(), id_values, sizeof(id_values));
  NpzArray scale{"scale", Tensor::FromVector({}, {3.25f})};
  NpzArray empty{"caf\xc3\xa9/empty", Tensor(DType::kFloat32, {0, 3})};
  return {w, ids, scale, empty};
}

// One line per array, as the Python check prints it: hex(name) descr
// dims bytes.
std::string ExpectedLine(const NpzArray& a) {
  std::string dims;
  for (size_t i = 0; i < a.value.shape().size(); ++i) dims += (i ? "," : "") + std::to_string(a.value.shape()[i]);
  const std::string bytes = Hex(a.value.raw(), a.value.byte_size());
  return Hex(a.name) + " " + (a.value.dtype() == DType::kFloat32 ? "<f4" : "<i8") + " " +
         (dims.empty() ? "-" : dims) + " " + (bytes.empty() ? "-" : bytes);
}

class NpzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (fs::temp_directory_path() / ("cairn_npz_test_" + std::to_string(::getpid()) + "_" + info->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A Python that has numpy ("" if none), probed once. The system's comes
  // first: the PATH's python3 may be a slow-starting shim or a virtual
  // environment without numpy.
  static const std::string& PythonWithNumpy() {
    static const std::string python = [] {
      for (const char* candidate : {"/usr/bin/python3", "python3"}) {
        const std::string probe = std::string(candidate) + " -c 'import numpy' >/dev/null 2>&1";
        if (std::system(probe.c_str()) == 0) return std::string(candidate);
      }
      return std::string();
    }();
    return python;
  }

  // What numpy.load makes of `npz`, one ExpectedLine-style line per key.
  std::set<std::string> LoadWithNumpy(const std::string& python, const std::string& npz) {
    const std::string script = dir_ + "/check.py";
    std::ofstream(script) << "import sys, numpy as np\n"
                             "with np.load(sys.argv[1]) as z:\n"
                             "    for k in z.files:\n"
                             "        a = z[k]\n"
                             "        dims = ','.join(str(d) for d in a.shape) or '-'\n"
                             "        print(k.encode().hex(), a.dtype.str, dims, a.tobytes().hex() or '-')\n";
    const std::string command = python + " " + script + " " + npz + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    EXPECT_NE(pipe, nullptr);
    std::string output;
    char buf[4096];
    for (size_t n; pipe != nullptr && (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) output.append(buf, n);
    EXPECT_EQ(pipe == nullptr ? -1 : ::pclose(pipe), 0) << output;
    std::set<std::string> lines;
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) lines.insert(line);
    return lines;
  }

  void ExpectNumpyReads(const std::string& npz, const std::vector<NpzArray>& arrays) {
    const std::string& python = PythonWithNumpy();
    if (python.empty()) GTEST_SKIP() << "python3 with numpy not found; the structural test still checks the archive";
    std::set<std::string> expected;
    for (const NpzArray& a : arrays) expected.insert(ExpectedLine(a));
    EXPECT_EQ(LoadWithNumpy(python, npz), expected);
  }

  std::string dir_;
};

// ---- A minimal zip reader, independent of the writer ----

uint64_t Le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s.at(at + i));
  return v;
}

struct ZipMember {
  std::string name;
  std::string data;  // the stored bytes
};

// Parses the end records and central directory of `zip`, checks each
// member's local header and CRC, and returns the members.
std::vector<ZipMember> ParseZip(const std::string& zip, bool* saw_zip64) {
  std::vector<ZipMember> members;
  const size_t eocd = zip.size() - 22;
  EXPECT_EQ(Le(zip, eocd, 4), 0x06054b50u);
  uint64_t count = Le(zip, eocd + 10, 2), cd_size = Le(zip, eocd + 12, 4), cd_offset = Le(zip, eocd + 16, 4);
  size_t cd_end = eocd;
  *saw_zip64 = count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF;
  if (*saw_zip64) {
    const size_t locator = eocd - 20;
    EXPECT_EQ(Le(zip, locator, 4), 0x07064b50u);
    const size_t end64 = Le(zip, locator + 8, 8);
    EXPECT_EQ(end64, locator - 56);
    EXPECT_EQ(Le(zip, end64, 4), 0x06064b50u);
    count = Le(zip, end64 + 32, 8);
    cd_size = Le(zip, end64 + 40, 8);
    cd_offset = Le(zip, end64 + 48, 8);
    cd_end = end64;
  }
  EXPECT_EQ(cd_offset + cd_size, cd_end);
  size_t at = cd_offset;
  for (uint64_t i = 0; i < count; ++i) {
    EXPECT_EQ(Le(zip, at, 4), 0x02014b50u);
    EXPECT_EQ(Le(zip, at + 10, 2), 0u) << "stored";
    const uint32_t crc = static_cast<uint32_t>(Le(zip, at + 16, 4));
    uint64_t compressed = Le(zip, at + 20, 4), size = Le(zip, at + 24, 4), offset = Le(zip, at + 42, 4);
    const size_t name_len = Le(zip, at + 28, 2), extra_len = Le(zip, at + 30, 2), comment_len = Le(zip, at + 32, 2);
    ZipMember m{zip.substr(at + 46, name_len), ""};
    for (size_t e = at + 46 + name_len; e < at + 46 + name_len + extra_len;) {
      const size_t field_len = Le(zip, e + 2, 2);
      if (Le(zip, e, 2) == 1) {
        *saw_zip64 = true;
        size_t f = e + 4;
        for (uint64_t* field : {&size, &compressed, &offset}) {  // present only if masked, in this order
          if (*field != 0xFFFFFFFF) continue;
          *field = Le(zip, f, 8);
          f += 8;
        }
        EXPECT_EQ(f, e + 4 + field_len);
      }
      e += 4 + field_len;
    }
    EXPECT_EQ(compressed, size);
    EXPECT_EQ(Le(zip, offset, 4), 0x04034b50u);
    EXPECT_EQ(Le(zip, offset + 14, 4), crc) << "local header CRC of " << m.name;
    const size_t local_name_len = Le(zip, offset + 26, 2), local_extra_len = Le(zip, offset + 28, 2);
    EXPECT_EQ(zip.substr(offset + 30, local_name_len), m.name);
    for (size_t e = offset + 30 + local_name_len; e < offset + 30 + local_name_len + local_extra_len;) {
      if (Le(zip, e, 2) == 1) {  // a Zip64 local header: the sizes in 64 bits
        *saw_zip64 = true;
        EXPECT_EQ(Le(zip, e + 4, 8), size) << m.name;
      }
      e += 4 + Le(zip, e + 2, 2);
    }
    m.data = zip.substr(offset + 30 + local_name_len + local_extra_len, size);
    EXPECT_EQ(crc32_z(0, reinterpret_cast<const Bytef*>(m.data.data()), m.data.size()), crc) << m.name;
    members.push_back(std::move(m));
    at += 46 + name_len + extra_len + comment_len;
  }
  EXPECT_EQ(at, cd_end);
  return members;
}

// Checks `archive` without Python: CRCs, names, .npy headers and data.
void ExpectWellFormed(const std::string& archive, const std::vector<NpzArray>& arrays, bool want_zip64) {
  bool saw_zip64 = false;
  const std::vector<ZipMember> members = ParseZip(ReadAll(archive), &saw_zip64);
  EXPECT_EQ(saw_zip64, want_zip64);
  ASSERT_EQ(members.size(), arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    const ZipMember& m = members[i];
    const Tensor& t = arrays[i].value;
    EXPECT_EQ(m.name, arrays[i].name + ".npy");
    ASSERT_GE(m.data.size(), 10u);
    EXPECT_EQ(m.data.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const size_t preamble = 10 + Le(m.data, 8, 2);
    EXPECT_EQ(preamble % 64, 0u) << m.name;
    EXPECT_EQ(m.data[preamble - 1], '\n');
    EXPECT_EQ(m.data.size(), preamble + t.byte_size());
    EXPECT_EQ(m.data.compare(preamble, t.byte_size(), static_cast<const char*>(t.raw()), t.byte_size()), 0);
  }
}

std::string NpyHeaderDict(const std::string& archive, const std::string& member) {
  bool zip64;
  for (const ZipMember& m : ParseZip(ReadAll(archive), &zip64)) {
    if (m.name != member) continue;
    const std::string header = m.data.substr(10, Le(m.data, 8, 2));
    return header.substr(0, header.find_last_not_of(" \n") + 1);
  }
  return "";
}

TEST_F(NpzTest, NumpyReadsNamesDtypesShapesAndExactBits) {
  const std::string path = dir_ + "/model.npz";
  const std::vector<NpzArray> arrays = TestArrays();
  ASSERT_EQ(WriteNpz(path, arrays), Status::OK());
  ExpectNumpyReads(path, arrays);
}

TEST_F(NpzTest, NumpyReadsZip64Records) {
  const std::string path = dir_ + "/model.npz";
  const std::vector<NpzArray> arrays = TestArrays();
  ASSERT_EQ(npz_internal::WriteNpz(path, arrays, /*sizes_unknown=*/true), Status::OK());
  ExpectNumpyReads(path, arrays);
}

TEST_F(NpzTest, ArchiveIsWellFormedWithMatchingCrcs) {
  const std::string path = dir_ + "/model.npz";
  const std::vector<NpzArray> arrays = TestArrays();
  ASSERT_EQ(WriteNpz(path, arrays), Status::OK());
  ExpectWellFormed(path, arrays, /*want_zip64=*/false);
  ASSERT_EQ(npz_internal::WriteNpz(path, arrays, /*sizes_unknown=*/true), Status::OK());
  ExpectWellFormed(path, arrays, /*want_zip64=*/true);
}

// Arrays added with loaders are read when libzip writes them, in order,
// each dropped before the next is read: one in memory at a time.
TEST_F(NpzTest, LazyArraysAreReadInTurnAndDroppedBeforeTheNext) {
  const std::string path = dir_ + "/model.npz";
  const std::vector<NpzArray> arrays = TestArrays();
  StatusOr<std::unique_ptr<NpzWriter>> writer = NpzWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::vector<std::string> order;
  std::weak_ptr<const void> previous;
  int alive_at_load = 0;
  for (const NpzArray& a : arrays) {
    ASSERT_EQ((*writer)->Add(a.name, [&, a]() -> StatusOr<Tensor> {
      order.push_back(a.name);
      alive_at_load += !previous.expired();
      Tensor copy = a.value.Clone();
      previous = copy.owner();
      return copy;
    }), Status::OK());
  }
  EXPECT_TRUE(order.empty()) << "an array was read before Finish";
  ASSERT_EQ((*writer)->Finish(), Status::OK());
  ASSERT_EQ(order.size(), arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) EXPECT_EQ(order[i], arrays[i].name);
  EXPECT_EQ(alive_at_load, 0) << "an array was still in memory when the next was read";
  EXPECT_TRUE(previous.expired());
  ExpectWellFormed(path, arrays, /*want_zip64=*/true);  // sizes unknown up front: Zip64 local headers
  ExpectNumpyReads(path, arrays);
}

// A loader that fails fails Finish with its error, naming the array, and
// leaves nothing behind.
TEST_F(NpzTest, ALoaderErrorFailsFinishNamingTheArrayAndLeavesNothing) {
  const std::string path = dir_ + "/model.npz";
  StatusOr<std::unique_ptr<NpzWriter>> writer = NpzWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_EQ((*writer)->Add(TestArrays()[0]), Status::OK());
  ASSERT_EQ((*writer)->Add("broken", []() -> StatusOr<Tensor> { return DataLoss("a corrupt shard"); }), Status::OK());
  const Status s = (*writer)->Finish();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("array 'broken'"), std::string::npos) << s;
  EXPECT_NE(s.message().find("a corrupt shard"), std::string::npos) << s;
  writer->reset();
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(NpzTest, AnArchiveOfNoArraysIsAnEmptyZip) {
  const std::string path = dir_ + "/model.npz";
  ASSERT_EQ(WriteNpz(path, {}), Status::OK());
  bool zip64 = false;
  EXPECT_TRUE(ParseZip(ReadAll(path), &zip64).empty());
  ExpectNumpyReads(path, {});
}

TEST_F(NpzTest, NpyHeadersSpellShapesAsPythonTuples) {
  const std::string path = dir_ + "/model.npz";
  ASSERT_EQ(WriteNpz(path, TestArrays()), Status::OK());
  EXPECT_EQ(NpyHeaderDict(path, "dense_0/W.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }");
  EXPECT_EQ(NpyHeaderDict(path, "ids.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }");
  EXPECT_EQ(NpyHeaderDict(path, "scale.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
}

TEST_F(NpzTest, EmptyOrDuplicateNameIsInvalidArgumentAndWritesNothing) {
  const std::string path = dir_ + "/model.npz";
  std::vector<NpzArray> arrays = TestArrays();
  arrays.push_back({"ids", Tensor(DType::kInt64, {2})});
  Status s = WriteNpz(path, arrays);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("'ids'"), std::string::npos) << s;
  arrays.back().name = "";
  s = WriteNpz(path, arrays);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(NpzTest, ReplacesAnExistingFileAndLeavesNoTemporary) {
  const std::string path = dir_ + "/model.npz";
  std::ofstream(path) << "an older export";
  ASSERT_EQ(WriteNpz(path, TestArrays()), Status::OK());
  ExpectWellFormed(path, TestArrays(), /*want_zip64=*/false);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"model.npz"});
}

TEST_F(NpzTest, AWriterAppearsAtItsPathOnlyWhenFinished) {
  const std::string path = dir_ + "/model.npz";
  const std::vector<NpzArray> arrays = TestArrays();
  StatusOr<std::unique_ptr<NpzWriter>> writer = NpzWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (const NpzArray& a : arrays) {
    ASSERT_EQ((*writer)->Add(a), Status::OK());
    EXPECT_FALSE(fs::exists(path)) << "a partial archive is visible after adding '" << a.name << "'";
  }
  // A bad array is refused without spoiling the archive.
  EXPECT_EQ((*writer)->Add({arrays[0].name, arrays[0].value}).code(), StatusCode::kInvalidArgument);
  ASSERT_EQ((*writer)->Finish(), Status::OK());
  ExpectWellFormed(path, arrays, /*want_zip64=*/false);
  ExpectNumpyReads(path, arrays);
  EXPECT_EQ((*writer)->Add({"late", Tensor(DType::kFloat32, {1})}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->Finish().code(), StatusCode::kFailedPrecondition);
  writer->reset();
  ExpectWellFormed(path, arrays, /*want_zip64=*/false);  // a finished archive outlives its writer
}

TEST_F(NpzTest, AWriterDroppedBeforeFinishLeavesNothingBehind) {
  const std::string path = dir_ + "/model.npz";
  {
    StatusOr<std::unique_ptr<NpzWriter>> writer = NpzWriter::Create(path);
    ASSERT_TRUE(writer.ok()) << writer.status();
    for (const NpzArray& a : TestArrays()) ASSERT_EQ((*writer)->Add(a), Status::OK());
  }  // an export that failed while reading its next variable
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(NpzTest, UnwritablePathIsAnErrorNamingIt) {
  const std::string path = dir_ + "/no/such/dir/model.npz";
  const Status s = WriteNpz(path, TestArrays());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos) << s;
}

}  // namespace
}  // namespace cairn
