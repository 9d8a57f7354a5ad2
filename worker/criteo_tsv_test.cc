#include "worker/criteo_tsv.h"

#include <stdlib.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/synthetic_clicks.h"

namespace cairn {
namespace {

// A line of 40 fields: label, 13 counts, 26 categories.
std::string Line(const std::string& label, const std::string& count = "3", const std::string& category = "68fd1e64") {
  std::string line = label;
  for (int j = 0; j < kClickCounts; ++j) line += "\t" + count;
  for (int s = 0; s < kClickSlots; ++s) line += "\t" + category;
  return line;
}

class CriteoTsvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "/criteo_tsv_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    EXPECT_TRUE(out.good()) << path;
    return path;
  }

  StatusOr<std::unique_ptr<CriteoTsv>> Open(std::vector<std::string> paths, bool skip = false, int64_t limit = 0) {
    CriteoTsvOptions options;
    options.paths = std::move(paths);
    options.skip_malformed = skip;
    options.limit = limit;
    return CriteoTsv::Open(options);
  }

  // The error opening a one-file log of `text`.
  Status OpenError(const std::string& text) {
    StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({Write("bad.tsv", text)});
    EXPECT_FALSE(tsv.ok());
    return tsv.ok() ? Status::OK() : tsv.status();
  }

  std::string dir_;
};

TEST_F(CriteoTsvTest, ALineGivesItsLabelCountsAndHashedIds) {
  std::string line = "1\t5\t\t-2\t0";
  for (int j = 4; j < kClickCounts; ++j) line += "\t" + std::to_string(j);
  for (int s = 0; s < kClickSlots; ++s) line += s == 3 ? "\t" : "\t" + std::string("a9b8c7d6");
  StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({Write("one.tsv", line + "\n" + Line("0") + "\n")});
  ASSERT_TRUE(tsv.ok()) << tsv.status();
  ASSERT_EQ((*tsv)->size(), 2);
  ClickBatch b;
  ASSERT_TRUE((*tsv)->Read(0, 2, &b).ok());
  EXPECT_EQ(b.labels[0], 1);
  EXPECT_EQ(b.labels[1], 0);
  EXPECT_EQ(b.count(0, 0), 5);
  EXPECT_EQ(b.count(0, 1), kMissingCount);
  EXPECT_EQ(b.count(0, 2), -2);
  EXPECT_EQ(b.count(0, 12), 12);
  EXPECT_EQ(b.id(0, 0), CriteoCategoryId(0, "a9b8c7d6"));
  EXPECT_EQ(b.id(0, 3), kMissingId);
  EXPECT_EQ(b.id(0, 25), CriteoCategoryId(25, "a9b8c7d6"));
  EXPECT_NE(b.id(0, 0), b.id(0, 25));  // slots hash apart
  EXPECT_EQ(b.count(1, 7), 3);
}

TEST(CriteoCategoryId, IsXxh3SeededBySlotWithTheTopBitCleared) {
  const std::string text = "68fd1e64";
  for (int slot : {0, 7, 25}) {
    const uint64_t hash = XXH3_64bits_withSeed(text.data(), text.size(), slot);
    EXPECT_EQ(CriteoCategoryId(slot, text), static_cast<int64_t>(hash & 0x7fffffffffffffffULL));
    EXPECT_GE(CriteoCategoryId(slot, text), 0);
  }
}

// The synthetic log written as TSV and read back: labels and counts equal,
// ids one-to-one with the generator's, missing where it has them missing.
TEST_F(CriteoTsvTest, SyntheticClicksSurviveARoundTrip) {
  SyntheticClicksOptions o;
  o.rows = 20000;
  StatusOr<std::unique_ptr<SyntheticClicks>> clicks = SyntheticClicks::Create(o);
  ASSERT_TRUE(clicks.ok()) << clicks.status();
  const std::string path = dir_ + "/synthetic.tsv";
  ASSERT_TRUE(WriteCriteoTsv(**clicks, 0, o.rows, path).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({path});
  ASSERT_TRUE(tsv.ok()) << tsv.status();
  ASSERT_EQ((*tsv)->size(), o.rows);
  ClickBatch generated, read;
  ASSERT_TRUE((*clicks)->Read(0, o.rows, &generated).ok());
  ASSERT_TRUE((*tsv)->Read(0, o.rows, &read).ok());
  EXPECT_EQ(read.labels, generated.labels);
  EXPECT_EQ(read.counts, generated.counts);
  for (int s = 0; s < kClickSlots; ++s) {
    std::map<int64_t, int64_t> forward, backward;
    for (int64_t i = 0; i < o.rows; ++i) {
      const int64_t g = generated.id(i, s), r = read.id(i, s);
      ASSERT_EQ(g == kMissingId, r == kMissingId) << "row " << i << " slot C" << s + 1;
      ASSERT_EQ(forward.emplace(g, r).first->second, r) << "generator id " << g << " read two ways";
      ASSERT_EQ(backward.emplace(r, g).first->second, g) << "read id " << r << " from two generator ids";
    }
  }
}

TEST_F(CriteoTsvTest, WrittenLinesLookLikeCriteos) {
  SyntheticClicksOptions o;
  o.rows = 50;
  StatusOr<std::unique_ptr<SyntheticClicks>> clicks = SyntheticClicks::Create(o);
  ASSERT_TRUE(clicks.ok());
  const std::string path = dir_ + "/few.tsv";
  ASSERT_TRUE(WriteCriteoTsv(**clicks, 10, 40, path).ok());
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    std::vector<std::string> fields;
    std::stringstream split(line);
    for (std::string f; std::getline(split, f, '\t');) fields.push_back(f);
    if (line.back() == '\t') fields.push_back("");
    ASSERT_EQ(fields.size(), 40u) << line;
    EXPECT_TRUE(fields[0] == "0" || fields[0] == "1");
    for (int s = 0; s < kClickSlots; ++s) {
      const std::string& c = fields[1 + kClickCounts + s];
      EXPECT_TRUE(c.empty() || (c.size() == 8 && c.find_first_not_of("0123456789abcdef") == std::string::npos)) << c;
    }
  }
  EXPECT_EQ(lines, 40);
}

TEST_F(CriteoTsvTest, SeveralFilesAreOneLogAndLimitStopsEarly) {
  const std::string a = Write("a.tsv", Line("1", "1") + "\n" + Line("0", "2") + "\n");
  const std::string b = Write("b.tsv", Line("1", "3") + "\r\n" + Line("0", "4"));  // CRLF, no final newline
  StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({a, b});
  ASSERT_TRUE(tsv.ok()) << tsv.status();
  ASSERT_EQ((*tsv)->size(), 4);
  ClickBatch batch;
  ASSERT_TRUE((*tsv)->Gather(std::vector<int64_t>{3, 0, 2}, &batch).ok());
  EXPECT_EQ(batch.count(0, 0), 4);
  EXPECT_EQ(batch.count(1, 0), 1);
  EXPECT_EQ(batch.count(2, 0), 3);
  EXPECT_EQ(batch.id(2, 25), CriteoCategoryId(25, "68fd1e64"));  // no '\r' left on the last field
  StatusOr<std::unique_ptr<CriteoTsv>> limited = Open({a, b}, false, 3);
  ASSERT_TRUE(limited.ok());
  EXPECT_EQ((*limited)->size(), 3);
  EXPECT_EQ((*limited)->Read(2, 2, &batch).code(), StatusCode::kOutOfRange);
}

TEST_F(CriteoTsvTest, GzipFilesAreRead) {
  const std::string path = dir_ + "/day_0.gz";
  const std::string text = Line("1", "7") + "\n" + Line("0", "8") + "\n";
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
  StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({path});
  ASSERT_TRUE(tsv.ok()) << tsv.status();
  ClickBatch batch;
  ASSERT_TRUE((*tsv)->Read(0, 2, &batch).ok());
  EXPECT_EQ(batch.count(1, 12), 8);

  // Cut before the gzip trailer: corrupt, not a shorter log.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = Write("cut.gz", bytes.substr(0, bytes.size() - 6));
  StatusOr<std::unique_ptr<CriteoTsv>> truncated = Open({cut});
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), StatusCode::kDataLoss) << truncated.status();
}

TEST_F(CriteoTsvTest, MalformedLinesAreErrorsNamingFileAndLine) {
  const std::string good = Line("0") + "\n";
  const std::string path = dir_ + "/bad.tsv";
  struct Case {
    std::string line, why;
  };
  const std::vector<Case> cases = {
      {Line("1").substr(0, Line("1").rfind('\t')), "found 39"},
      {Line("1") + "\textra", "found 41"},
      {"", "found 1"},
      {Line("1", "12a"), "I1 '12a'"},
      {Line("1", "4294967296"), "I1 '4294967296'"},
      {Line("1", "-2147483648"), "I1 '-2147483648'"},
      {Line("1", " 3"), "I1 ' 3'"},
      {Line("2"), "label '2'"},
      {Line(""), "label ''"},
      {Line("0.5"), "label '0.5'"},
  };
  for (const Case& c : cases) {
    const Status s = OpenError(good + good + c.line + "\n" + good);
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(path + ":3: "), std::string::npos) << s;
    EXPECT_NE(s.message().find(c.why), std::string::npos) << s;
  }
}

TEST_F(CriteoTsvTest, MalformedLinesCanBeSkippedAndCounted) {
  const std::string text = Line("1") + "\n" + Line("x") + "\n" + Line("0") + "\n" + "junk\n" + Line("0", "z") + "\n";
  StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({Write("mixed.tsv", text)}, true);
  ASSERT_TRUE(tsv.ok()) << tsv.status();
  EXPECT_EQ((*tsv)->size(), 2);
  EXPECT_EQ((*tsv)->skipped_lines(), 3);
  EXPECT_NE((*tsv)->first_skipped().message().find("mixed.tsv:2: label 'x'"), std::string::npos)
      << (*tsv)->first_skipped();
  ClickBatch batch;
  ASSERT_TRUE((*tsv)->Read(0, 2, &batch).ok());
  EXPECT_EQ(batch.labels[0], 1);
  EXPECT_EQ(batch.labels[1], 0);
}

TEST_F(CriteoTsvTest, AMissingFileIsNotFound) {
  StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({dir_ + "/nope.tsv"});
  ASSERT_FALSE(tsv.ok());
  EXPECT_EQ(tsv.status().code(), StatusCode::kNotFound) << tsv.status();
  EXPECT_NE(tsv.status().message().find("nope.tsv"), std::string::npos);
  EXPECT_EQ(Open({}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(CriteoTsvTest, AnEmptyFileIsAnEmptyLog) {
  StatusOr<std::unique_ptr<CriteoTsv>> tsv = Open({Write("empty.tsv", "")});
  ASSERT_TRUE(tsv.ok()) << tsv.status();
  EXPECT_EQ((*tsv)->size(), 0);
}

TEST_F(CriteoTsvTest, WritingToAMissingDirectoryFailsAndLeavesNothing) {
  SyntheticClicksOptions o;
  o.rows = 10;
  StatusOr<std::unique_ptr<SyntheticClicks>> clicks = SyntheticClicks::Create(o);
  ASSERT_TRUE(clicks.ok());
  Status s = WriteCriteoTsv(**clicks, 0, 10, dir_ + "/no/such/dir.tsv");
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s;
  EXPECT_EQ(WriteCriteoTsv(**clicks, 5, 6, dir_ + "/x.tsv").code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/x.tsv"));
}

}  // namespace
}  // namespace cairn
