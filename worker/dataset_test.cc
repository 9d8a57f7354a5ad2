#include "worker/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

// --- IDX files ---------------------------------------------------------------

std::string BigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string ImageBytes(uint32_t count, uint32_t rows, uint32_t cols, const std::vector<uint8_t>& pixels) {
  return BigEndian(0x00000803) + BigEndian(count) + BigEndian(rows) + BigEndian(cols) +
         std::string(pixels.begin(), pixels.end());
}

std::string LabelBytes(uint32_t count, const std::vector<uint8_t>& labels) {
  return BigEndian(0x00000801) + BigEndian(count) + std::string(labels.begin(), labels.end());
}

void WritePlain(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Three 2x2 images and their labels.
const std::vector<uint8_t> kPixels = {0, 255, 51, 102, 1, 2, 3, 4, 200, 100, 50, 25};
const std::vector<uint8_t> kLabels = {7, 0, 9};

// `n` 4x4 images of pseudo-random (incompressible) pixels, as one IDX file.
std::string RandomImages(uint32_t n, uint32_t seed) {
  std::vector<uint8_t> pixels(n * 16);
  uint32_t state = seed;
  for (uint8_t& p : pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  return ImageBytes(n, 4, 4, pixels);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

void ExpectTheSmallDataset(const StatusOr<Dataset>& d) {
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->examples, 3);
  EXPECT_EQ(d->features, 4);
  ASSERT_EQ(d->x.size(), 12u);
  for (size_t i = 0; i < kPixels.size(); ++i) EXPECT_FLOAT_EQ(d->x[i], kPixels[i] / 255.0f) << i;
  EXPECT_FLOAT_EQ(d->x[1], 1.0f);
  EXPECT_FLOAT_EQ(d->x[2], 0.2f);
  EXPECT_EQ(d->labels, (std::vector<int64_t>{7, 0, 9}));
  EXPECT_TRUE(d->targets.empty());
  EXPECT_TRUE(d->classification());
}

// A fixture giving each test its own temporary directory, removed after it.
class TempFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           (std::string("cairn_dataset_test_") + info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string TempPath(const std::string& name) const { return (dir_ / name).string(); }
  std::string dir() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
};

class LoadIdxTest : public TempFilesTest {};
class LoadFashionMnistTest : public TempFilesTest {};

TEST_F(LoadIdxTest, ReadsPlainFilesAndScalesPixelsToTheUnitInterval) {
  const std::string images = TempPath("images"), labels = TempPath("labels");
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, LabelBytes(3, kLabels)));
  ExpectTheSmallDataset(LoadIdx(images, labels));
}

TEST_F(LoadIdxTest, ReadsGzipFiles) {
  const std::string images = TempPath("images.gz"), labels = TempPath("labels.gz");
  ASSERT_NO_FATAL_FAILURE(WriteGzip(images, ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WriteGzip(labels, LabelBytes(3, kLabels)));
  ASSERT_EQ(static_cast<unsigned char>(ReadAll(images)[0]), 0x1f);  // really gzip
  ExpectTheSmallDataset(LoadIdx(images, labels));
}

TEST_F(LoadIdxTest, ReadsAGzipImageFileBesideAPlainLabelFile) {
  const std::string images = TempPath("images.gz"), labels = TempPath("labels");
  ASSERT_NO_FATAL_FAILURE(WriteGzip(images, ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, LabelBytes(3, kLabels)));
  ExpectTheSmallDataset(LoadIdx(images, labels));
}

TEST_F(LoadIdxTest, LimitReadsOnlyTheFirstExamples) {
  const std::string images = TempPath("images.gz"), labels = TempPath("labels.gz");
  ASSERT_NO_FATAL_FAILURE(WriteGzip(images, ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WriteGzip(labels, LabelBytes(3, kLabels)));
  StatusOr<Dataset> d = LoadIdx(images, labels, 2);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->examples, 2);
  EXPECT_EQ(d->features, 4);
  ASSERT_EQ(d->x.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(d->x[i], kPixels[i] / 255.0f);
  EXPECT_EQ(d->labels, (std::vector<int64_t>{7, 0}));
  // A limit past the end, or 0, reads everything.
  EXPECT_EQ(LoadIdx(images, labels, 100)->examples, 3);
  EXPECT_EQ(LoadIdx(images, labels, 0)->examples, 3);
}

TEST_F(LoadIdxTest, AMissingFileIsNotFoundNamingThePath) {
  const std::string images = TempPath("images"), labels = TempPath("labels");
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, ImageBytes(3, 2, 2, kPixels)));
  const std::string missing = TempPath("no_such_file.gz");
  StatusOr<Dataset> d = LoadIdx(missing, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(d.status().message(), missing)) << d.status();
  d = LoadIdx(images, missing);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(d.status().message(), missing)) << d.status();
}

TEST_F(LoadIdxTest, BadMagicIsAnErrorNamingTheFile) {
  const std::string images = TempPath("images"), labels = TempPath("labels");
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, LabelBytes(3, kLabels)));
  // A label file where the images should be, and the other way round.
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, LabelBytes(3, kLabels)));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();

  ASSERT_NO_FATAL_FAILURE(WritePlain(images, ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, ImageBytes(3, 2, 2, kPixels)));
  d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(d.status().message(), labels)) << d.status();

  // A file too short to hold a header.
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, BigEndian(0x803)));
  d = LoadIdx(images, TempPath("labels"));
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
}

TEST_F(LoadIdxTest, ATruncatedImageFileIsAnErrorNamingIt) {
  const std::string images = TempPath("images"), labels = TempPath("labels");
  std::string bytes = ImageBytes(3, 2, 2, kPixels);
  bytes.resize(bytes.size() - 3);  // the header still says 3 images
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, bytes));
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, LabelBytes(3, kLabels)));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
  // Also when only the header is left, and with a limit that would fit.
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, ImageBytes(3, 2, 2, {})));
  d = LoadIdx(images, labels, 1);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
}

TEST_F(LoadIdxTest, ATruncatedLabelFileIsAnErrorNamingIt) {
  const std::string images = TempPath("images"), labels = TempPath("labels");
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, LabelBytes(3, {7, 0})));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(d.status().message(), labels)) << d.status();
}

TEST_F(LoadIdxTest, ATruncatedGzipStreamIsAnErrorNamingTheFile) {
  const std::string images = TempPath("images.gz"), labels = TempPath("labels.gz");
  ASSERT_NO_FATAL_FAILURE(WriteGzip(images, RandomImages(64, 5)));
  ASSERT_NO_FATAL_FAILURE(WriteGzip(labels, LabelBytes(64, std::vector<uint8_t>(64, 3))));
  ASSERT_TRUE(LoadIdx(images, labels).ok());
  const std::string whole = ReadAll(images);
  ASSERT_GT(whole.size(), 600u);
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, whole.substr(0, whole.size() / 2)));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss) << d.status();
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
}

// Cutting only the gzip trailer (CRC-32 and length) leaves every data byte
// readable; the stream is still incomplete and its integrity unchecked.
TEST_F(LoadIdxTest, AGzipStreamMissingItsTrailerIsAnErrorNamingTheFile) {
  const std::string images = TempPath("images.gz"), labels = TempPath("labels.gz");
  ASSERT_NO_FATAL_FAILURE(WriteGzip(images, RandomImages(64, 6)));
  ASSERT_NO_FATAL_FAILURE(WriteGzip(labels, LabelBytes(64, std::vector<uint8_t>(64, 3))));
  const std::string whole = ReadAll(images);
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, whole.substr(0, whole.size() - 8)));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok()) << "a gzip stream without its trailer was accepted";
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss) << d.status();
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
}

TEST_F(LoadIdxTest, AGzipStreamWithACorruptChecksumIsAnErrorNamingTheFile) {
  const std::string images = TempPath("images.gz"), labels = TempPath("labels.gz");
  ASSERT_NO_FATAL_FAILURE(WriteGzip(images, RandomImages(64, 7)));
  ASSERT_NO_FATAL_FAILURE(WriteGzip(labels, LabelBytes(64, std::vector<uint8_t>(64, 3))));
  std::string whole = ReadAll(images);
  whole[whole.size() - 8] ^= 0x5a;  // the CRC-32
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, whole));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok()) << "a gzip stream with a bad CRC was accepted";
  EXPECT_EQ(d.status().code(), StatusCode::kDataLoss) << d.status();
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
}

TEST_F(LoadIdxTest, ImageAndLabelCountMismatchIsAnErrorNamingTheFiles) {
  const std::string images = TempPath("images"), labels = TempPath("labels");
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, LabelBytes(2, {7, 0})));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
  EXPECT_TRUE(Contains(d.status().message(), labels)) << d.status();
}

TEST_F(LoadIdxTest, ImpossibleImageDimensionsAreAnErrorNamingTheFile) {
  const std::string images = TempPath("images"), labels = TempPath("labels");
  ASSERT_NO_FATAL_FAILURE(WritePlain(images, ImageBytes(0, 0, 2, {})));
  ASSERT_NO_FATAL_FAILURE(WritePlain(labels, LabelBytes(0, {})));
  StatusOr<Dataset> d = LoadIdx(images, labels);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(Contains(d.status().message(), images)) << d.status();
}

TEST_F(LoadFashionMnistTest, ReadsTheStandardFileNamesOfASplit) {
  const std::string dir = this->dir();
  ASSERT_NO_FATAL_FAILURE(WriteGzip(dir + "/t10k-images-idx3-ubyte.gz", ImageBytes(3, 2, 2, kPixels)));
  ASSERT_NO_FATAL_FAILURE(WriteGzip(dir + "/t10k-labels-idx1-ubyte.gz", LabelBytes(3, kLabels)));
  ExpectTheSmallDataset(LoadFashionMnist(dir, "t10k"));
  StatusOr<Dataset> train = LoadFashionMnist(dir, "train");
  ASSERT_FALSE(train.ok());
  EXPECT_EQ(train.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Contains(train.status().message(), dir + "/train-images-idx3-ubyte.gz")) << train.status();
}

TEST_F(LoadFashionMnistTest, AnUnknownSplitIsInvalidArgument) {
  StatusOr<Dataset> d = LoadFashionMnist(::testing::TempDir(), "validation");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(d.status().message(), "'validation'")) << d.status();
}

// --- ShardIterator -----------------------------------------------------------

// Example i has the single feature i and the label i % 10, so a batch shows
// which examples it holds.
Dataset Numbered(int64_t n) {
  Dataset d;
  d.examples = n;
  d.features = 1;
  for (int64_t i = 0; i < n; ++i) {
    d.x.push_back(static_cast<float>(i));
    d.labels.push_back(i % 10);
  }
  return d;
}

// The example ids of the next batch, checking that labels follow features.
std::vector<int64_t> NextIds(ShardIterator* it, int64_t batch) {
  Tensor x, y;
  it->Next(&x, &y);
  EXPECT_EQ(x.shape(), (Shape{batch, 1}));
  EXPECT_EQ(y.shape(), (Shape{batch}));
  EXPECT_EQ(y.dtype(), DType::kInt64);
  std::vector<int64_t> ids;
  for (int64_t r = 0; r < batch; ++r) {
    const int64_t id = static_cast<int64_t>(x.data<float>()[r]);
    EXPECT_EQ(y.data<int64_t>()[r], id % 10) << "row " << r;
    ids.push_back(id);
  }
  return ids;
}

std::vector<int64_t> Epoch(ShardIterator* it, int64_t batch) {
  std::vector<int64_t> ids;
  for (int64_t s = 0; s < it->steps_per_epoch(); ++s) {
    std::vector<int64_t> b = NextIds(it, batch);
    ids.insert(ids.end(), b.begin(), b.end());
  }
  return ids;
}

TEST(ShardIterator, WorkersSeeDisjointSharesThatTogetherCoverTheDataset) {
  const Dataset data = Numbered(36);
  std::set<int64_t> all;
  for (int w = 0; w < 3; ++w) {
    ShardIterator it(&data, w, 3, 4, /*seed=*/42);
    ASSERT_EQ(it.steps_per_epoch(), 3);
    for (int epoch = 0; epoch < 2; ++epoch) {
      const std::vector<int64_t> ids = Epoch(&it, 4);
      const std::set<int64_t> unique(ids.begin(), ids.end());
      EXPECT_EQ(unique.size(), 12u) << "worker " << w << " repeated an example within epoch " << epoch;
      for (int64_t id : ids) {
        EXPECT_EQ(id % 3, w) << "worker " << w << " got example " << id;
        if (epoch == 0) {
          EXPECT_TRUE(all.insert(id).second) << "example " << id << " went to two workers";
        }
      }
      EXPECT_EQ(it.position().epoch, epoch + 1);
      EXPECT_EQ(it.position().step_in_epoch, 0);
    }
  }
  EXPECT_EQ(all.size(), 36u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 35);
}

TEST(ShardIterator, EveryWorkerHasTheSameStepsPerEpoch) {
  for (int64_t n : {36, 37, 40, 47, 48, 1000}) {
    const Dataset data = Numbered(n);
    const int64_t expected = std::max<int64_t>(1, n / (3 * 4));
    for (int w = 0; w < 3; ++w) {
      ShardIterator it(&data, w, 3, 4, 1);
      EXPECT_EQ(it.steps_per_epoch(), expected) << n << " examples, worker " << w;
    }
  }
}

TEST(ShardIterator, UnevenSharesStillStayWithinTheWorkersExamples) {
  const Dataset data = Numbered(40);  // worker 0 holds 14 examples, the others 13
  for (int w = 0; w < 3; ++w) {
    ShardIterator it(&data, w, 3, 4, 9);
    for (int epoch = 0; epoch < 3; ++epoch) {
      const std::vector<int64_t> ids = Epoch(&it, 4);
      EXPECT_EQ(ids.size(), 12u);
      EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 12u);
      for (int64_t id : ids) EXPECT_EQ(id % 3, w);
    }
  }
}

TEST(ShardIterator, ShufflingIsDeterministicForASeed) {
  const Dataset data = Numbered(60);
  ShardIterator a(&data, 1, 2, 5, 123), b(&data, 1, 2, 5, 123);
  for (int s = 0; s < 20; ++s) EXPECT_EQ(NextIds(&a, 5), NextIds(&b, 5)) << "step " << s;
}

TEST(ShardIterator, DifferentSeedsShuffleDifferently) {
  const Dataset data = Numbered(60);
  ShardIterator a(&data, 0, 1, 60, 1), b(&data, 0, 1, 60, 2);
  const std::vector<int64_t> ea = NextIds(&a, 60), eb = NextIds(&b, 60);
  EXPECT_NE(ea, eb);
  EXPECT_EQ(std::set<int64_t>(ea.begin(), ea.end()), std::set<int64_t>(eb.begin(), eb.end()));
}

TEST(ShardIterator, EachEpochIsShuffledDifferently) {
  const Dataset data = Numbered(60);
  ShardIterator it(&data, 0, 1, 10, 7);
  std::vector<int64_t> first = Epoch(&it, 10), second = Epoch(&it, 10), third = Epoch(&it, 10);
  EXPECT_NE(first, second);
  EXPECT_NE(second, third);
  std::vector<int64_t> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> identity(60);
  for (int64_t i = 0; i < 60; ++i) identity[i] = i;
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(first, identity);  // shuffled at all
  std::sort(second.begin(), second.end());
  EXPECT_EQ(second, identity);
}

TEST(ShardIterator, SeekToASavedPositionContinuesExactlyAsWithoutInterruption) {
  const Dataset data = Numbered(50);
  for (int saved_after : {0, 3, 5, 7}) {  // mid-epoch, at an epoch boundary, in a later epoch
    ShardIterator uninterrupted(&data, 1, 2, 5, 77);
    ASSERT_EQ(uninterrupted.steps_per_epoch(), 5);
    for (int s = 0; s < saved_after; ++s) NextIds(&uninterrupted, 5);
    const DataPosition saved = uninterrupted.position();
    EXPECT_EQ(saved.epoch * 5 + saved.step_in_epoch, saved_after);

    ShardIterator resumed(&data, 1, 2, 5, 77);
    NextIds(&resumed, 5);  // a restored iterator may have been used before the restore
    resumed.Seek(saved);
    EXPECT_EQ(resumed.position().epoch, saved.epoch);
    EXPECT_EQ(resumed.position().step_in_epoch, saved.step_in_epoch);
    for (int s = 0; s < 12; ++s) {
      EXPECT_EQ(NextIds(&resumed, 5), NextIds(&uninterrupted, 5)) << "saved after " << saved_after << ", step " << s;
    }
  }
}

TEST(ShardIterator, RegressionBatchesCarryFloatTargets) {
  Dataset data;
  data.examples = 4;
  data.features = 2;
  data.x = {0, 0, 1, 10, 2, 20, 3, 30};
  data.targets = {0.5f, 1.5f, 2.5f, 3.5f};
  ShardIterator it(&data, 0, 1, 4, 3);
  Tensor x, y;
  it.Next(&x, &y);
  ASSERT_EQ(y.dtype(), DType::kFloat32);
  ASSERT_EQ(y.shape(), (Shape{4, 1}));
  ASSERT_EQ(x.shape(), (Shape{4, 2}));
  for (int r = 0; r < 4; ++r) {
    const float first = x.data<float>()[2 * r];
    EXPECT_FLOAT_EQ(x.data<float>()[2 * r + 1], first * 10);
    EXPECT_FLOAT_EQ(y.data<float>()[r], first + 0.5f);
  }
}

TEST(ShardIterator, AShareSmallerThanABatchWrapsAround) {
  const Dataset data = Numbered(5);
  ShardIterator it(&data, 0, 1, 8, 3);
  EXPECT_EQ(it.steps_per_epoch(), 1);
  const std::vector<int64_t> ids = NextIds(&it, 8);
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 5u);
}

TEST(ShardIterator, ShardSizeIsTheWorkersShareOfTheExamples) {
  const Dataset data = Numbered(40);
  EXPECT_EQ(ShardIterator(&data, 0, 3, 4, 1).shard_size(), 14);
  EXPECT_EQ(ShardIterator(&data, 1, 3, 4, 1).shard_size(), 13);
  EXPECT_EQ(ShardIterator(&data, 2, 3, 4, 1).shard_size(), 13);
  const Dataset tiny = Numbered(2);
  EXPECT_EQ(ShardIterator(&tiny, 1, 3, 4, 1).shard_size(), 1);
  EXPECT_EQ(ShardIterator(&tiny, 2, 3, 4, 1).shard_size(), 0);
}

// With fewer examples than workers, some worker's share is empty. Asking it
// for a batch gives an all-zero batch rather than bringing the process down
// (run in a child process, so that a crash fails this test alone).
TEST(ShardIteratorDeathTest, AWorkerWithAnEmptyShareGetsAZeroBatchInsteadOfCrashing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Dataset data = Numbered(2);
  auto next_batch_of_worker_2_of_3 = [&data] {
    ShardIterator it(&data, 2, 3, 4, 1);
    Tensor x, y;
    it.Next(&x, &y);
    bool ok = x.shape() == (Shape{4, 1}) && y.shape() == (Shape{4}) && y.dtype() == DType::kInt64;
    for (int64_t i = 0; ok && i < 4; ++i) ok = x.data<float>()[i] == 0 && y.data<int64_t>()[i] == 0;
    std::exit(ok ? 0 : 1);
  };
  EXPECT_EXIT(next_batch_of_worker_2_of_3(), ::testing::ExitedWithCode(0), "");
}

// --- FeatureMoments ----------------------------------------------------------

TEST(FeatureMoments, MatchesHandComputedMeansAndFloorsTheStddev) {
  Dataset d;
  d.examples = 4;
  d.features = 3;
  // Feature 0 varies; feature 1 is constant; feature 2 varies a little.
  d.x = {0, 0.5f, 0, 1, 0.5f, 0, 2, 0.5f, 0, 3, 0.5f, 0.04f};
  d.labels = {0, 1, 0, 1};
  std::vector<float> mean, inv_std;
  FeatureMoments(d, &mean, &inv_std);
  ASSERT_EQ(mean.size(), 3u);
  ASSERT_EQ(inv_std.size(), 3u);
  EXPECT_NEAR(mean[0], 1.5, 1e-6);
  EXPECT_NEAR(mean[1], 0.5, 1e-6);
  EXPECT_NEAR(mean[2], 0.01, 1e-7);
  // Population variance: feature 0 has (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
  EXPECT_NEAR(inv_std[0], 1 / std::sqrt(1.25), 1e-5);
  EXPECT_NEAR(inv_std[1], 1 / 0.05, 1e-3);  // stddev 0, floored at 0.05
  EXPECT_NEAR(inv_std[2], 1 / 0.05, 1e-3);  // stddev 0.0173, floored at 0.05

  FeatureMoments(d, &mean, &inv_std, /*min_stddev=*/0.001);
  EXPECT_NEAR(inv_std[0], 1 / std::sqrt(1.25), 1e-5);
  EXPECT_NEAR(inv_std[1], 1 / 0.001, 1e-1);
  EXPECT_NEAR(inv_std[2], 1 / std::sqrt(0.0003), 1e-2);
}

TEST(FeatureMoments, ReplacesWhatTheVectorsHeld) {
  Dataset d;
  d.examples = 2;
  d.features = 2;
  d.x = {1, 2, 3, 6};
  d.labels = {0, 1};
  std::vector<float> mean = {9, 9, 9, 9, 9}, inv_std = {9};
  FeatureMoments(d, &mean, &inv_std);
  EXPECT_EQ(mean, (std::vector<float>{2, 4}));
  ASSERT_EQ(inv_std.size(), 2u);
  EXPECT_FLOAT_EQ(inv_std[0], 1.0f);
  EXPECT_FLOAT_EQ(inv_std[1], 0.5f);
}

}  // namespace
}  // namespace cairn
