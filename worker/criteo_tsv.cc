#include "worker/criteo_tsv.h"

#include <xxhash.h>
#include <zlib.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>

#include "common/file_io.h"

namespace cairn {
namespace {

constexpr int kFields = 1 + kClickCounts + kClickSlots;
constexpr size_t kMaxLine = size_t{1} << 20;

// Lines of a plain or gzip file (zlib passes plain files through as-is),
// read a megabyte at a time.
class LineReader {
 public:
  ~LineReader() {
    if (file_) gzclose(file_);
  }

  Status Open(const std::string& path) {
    path_ = path;
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) return ErrnoStatus(errno ? errno : ENOMEM, "cannot open click log '" + path + "'");
    gzbuffer(file_, 1 << 17);
    buffer_.resize(kMaxLine + 1);
    return Status::OK();
  }

  // The next line, without its "\n" or "\r\n", in *line (valid until the
  // next call); *more is false at the end of the file.
  Status Next(std::string_view* line, bool* more) {
    for (;;) {
      const char* begin = buffer_.data() + start_;
      if (const void* nl = std::memchr(begin, '\n', end_ - start_)) {
        const size_t length = static_cast<const char*>(nl) - begin;
        start_ += length + 1;
        return Take(begin, length, line, more);
      }
      if (eof_) {
        const size_t length = end_ - start_;
        start_ = end_;
        if (length == 0) {
          *more = false;
          return Finish();
        }
        return Take(begin, length, line, more);
      }
      RETURN_IF_ERROR(Fill());
    }
  }

 private:
  static Status Take(const char* begin, size_t length, std::string_view* line, bool* more) {
    if (length > 0 && begin[length - 1] == '\r') --length;
    *line = std::string_view(begin, length);
    *more = true;
    return Status::OK();
  }

  // Moves the partial line to the front and reads after it.
  Status Fill() {
    std::memmove(buffer_.data(), buffer_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
    if (end_ == kMaxLine) return DataLoss("'" + path_ + "' has a line longer than 1 MiB: not a click log");
    const int n = gzread(file_, buffer_.data() + end_, static_cast<unsigned>(kMaxLine - end_));
    if (n < 0) {
      int err = 0;
      return DataLoss("click log '" + path_ + "' is corrupt: " + gzerror(file_, &err));
    }
    end_ += static_cast<size_t>(n);
    eof_ = n == 0;
    return Status::OK();
  }

  // gzclose reports a gzip stream that ended before its trailer.
  Status Finish() {
    if (!file_) return Status::OK();
    const int rc = gzclose(file_);
    file_ = nullptr;
    if (rc != Z_OK) return DataLoss("click log '" + path_ + "' is truncated or corrupt (gzip)");
    return Status::OK();
  }

  std::string path_;
  gzFile file_ = nullptr;
  std::string buffer_;
  size_t start_ = 0, end_ = 0;  // the unread bytes of buffer_
  bool eof_ = false;
};

// Splits `line` at tabs into `fields`; returns how many there are (more
// than kFields are counted, not stored).
int SplitFields(std::string_view line, std::array<std::string_view, kFields>* fields) {
  int count = 0;
  size_t start = 0;
  for (;;) {
    const size_t tab = line.find('\t', start);
    const size_t end = tab == std::string_view::npos ? line.size() : tab;
    if (count < kFields) (*fields)[count] = line.substr(start, end - start);
    ++count;
    if (tab == std::string_view::npos) return count;
    start = tab + 1;
  }
}

Status ParseCount(std::string_view text, int feature, int32_t* count) {
  if (text.empty()) {
    *count = kMissingCount;
    return Status::OK();
  }
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *count);
  if (ec != std::errc() || end != text.data() + text.size() || *count == kMissingCount) {
    return DataLoss("I" + std::to_string(feature + 1) + " '" + std::string(text) +
                    "' is not an integer in [-2^31 + 1, 2^31 - 1]");
  }
  return Status::OK();
}

// Appends `id` as lowercase hex, 8 digits or 16.
void AppendHex(uint64_t id, std::string* out) {
  const int digits = id >> 32 ? 16 : 8;
  for (int d = digits - 1; d >= 0; --d) out->push_back("0123456789abcdef"[(id >> (4 * d)) & 0xf]);
}

void AppendExample(const ClickBatch& batch, int64_t row, std::string* out) {
  out->push_back(batch.labels[row] > 0.5f ? '1' : '0');
  for (int j = 0; j < kClickCounts; ++j) {
    out->push_back('\t');
    const int32_t count = batch.count(row, j);
    if (count == kMissingCount) continue;
    char digits[16];
    const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), count);
    out->append(digits, end);
  }
  for (int s = 0; s < kClickSlots; ++s) {
    out->push_back('\t');
    if (batch.id(row, s) != kMissingId) AppendHex(static_cast<uint64_t>(batch.id(row, s)), out);
  }
  out->push_back('\n');
}

Status WriteExamples(const ClickSource& source, int64_t first, int64_t n, const std::string& path, FILE* file) {
  constexpr int64_t kChunk = 8192;
  ClickBatch batch;
  std::string text;
  for (int64_t done = 0; done < n; done += kChunk) {
    const int64_t rows = std::min(kChunk, n - done);
    RETURN_IF_ERROR(source.Read(first + done, rows, &batch));
    text.clear();
    for (int64_t i = 0; i < rows; ++i) AppendExample(batch, i, &text);
    if (std::fwrite(text.data(), 1, text.size(), file) != text.size()) {
      return ErrnoStatus(errno, "cannot write '" + path + "'");
    }
  }
  return Status::OK();
}

}  // namespace

int64_t CriteoCategoryId(int slot, std::string_view text) {
  const uint64_t hash = XXH3_64bits_withSeed(text.data(), text.size(), static_cast<XXH64_hash_t>(slot));
  return static_cast<int64_t>(hash & static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

StatusOr<std::unique_ptr<CriteoTsv>> CriteoTsv::Open(const CriteoTsvOptions& options) {
  if (options.paths.empty()) return InvalidArgument("criteo_tsv: no files to read");
  std::unique_ptr<CriteoTsv> tsv(new CriteoTsv());
  for (const std::string& path : options.paths) {
    if (options.limit > 0 && tsv->size() >= options.limit) break;
    RETURN_IF_ERROR(tsv->Load(path, options));
  }
  return tsv;
}

Status CriteoTsv::Load(const std::string& path, const CriteoTsvOptions& options) {
  LineReader reader;
  RETURN_IF_ERROR(reader.Open(path));
  std::string_view line;
  bool more = true;
  for (int64_t number = 1; options.limit <= 0 || size() < options.limit; ++number) {
    RETURN_IF_ERROR(reader.Next(&line, &more));
    if (!more) break;
    Status parsed = Append(line);
    if (parsed.ok()) continue;
    parsed = parsed.WithContext(path + ":" + std::to_string(number));
    if (!options.skip_malformed) return parsed;
    if (skipped_lines_++ == 0) first_skipped_ = parsed;
  }
  return Status::OK();
}

Status CriteoTsv::Append(std::string_view line) {
  std::array<std::string_view, kFields> fields;
  const int found = SplitFields(line, &fields);
  if (found != kFields) {
    return DataLoss("expected " + std::to_string(kFields) + " tab-separated fields (label, 13 counts, 26 categories), found " +
                    std::to_string(found));
  }
  if (fields[0] != "0" && fields[0] != "1") {
    return DataLoss("label '" + std::string(fields[0]) + "' is not 0 or 1");
  }
  std::array<int32_t, kClickCounts> counts;
  for (int j = 0; j < kClickCounts; ++j) RETURN_IF_ERROR(ParseCount(fields[1 + j], j, &counts[j]));
  labels_.push_back(fields[0] == "1" ? 1 : 0);
  counts_.insert(counts_.end(), counts.begin(), counts.end());
  for (int s = 0; s < kClickSlots; ++s) {
    const std::string_view text = fields[1 + kClickCounts + s];
    ids_.push_back(text.empty() ? kMissingId : CriteoCategoryId(s, text));
  }
  return Status::OK();
}

void CriteoTsv::CopyRow(int64_t from, int64_t to, ClickBatch* batch) const {
  batch->labels[to] = labels_[from];
  std::memcpy(&batch->counts[to * kClickCounts], &counts_[from * kClickCounts], sizeof(int32_t) * kClickCounts);
  std::memcpy(&batch->ids[to * kClickSlots], &ids_[from * kClickSlots], sizeof(int64_t) * kClickSlots);
}

Status CriteoTsv::Read(int64_t first, int64_t n, ClickBatch* batch) const {
  RETURN_IF_ERROR(CheckClickRange(first, n, size()));
  batch->Resize(n);
  for (int64_t i = 0; i < n; ++i) CopyRow(first + i, i, batch);
  return Status::OK();
}

Status CriteoTsv::Gather(std::span<const int64_t> indices, ClickBatch* batch) const {
  for (int64_t index : indices) RETURN_IF_ERROR(CheckClickRange(index, 1, size()));
  batch->Resize(static_cast<int64_t>(indices.size()));
  for (size_t i = 0; i < indices.size(); ++i) CopyRow(indices[i], static_cast<int64_t>(i), batch);
  return Status::OK();
}

Status WriteCriteoTsv(const ClickSource& source, int64_t first, int64_t n, const std::string& path) {
  RETURN_IF_ERROR(CheckClickRange(first, n, source.size()));
  const std::string temp = path + ".tmp";
  FILE* file = std::fopen(temp.c_str(), "w");
  if (!file) return ErrnoStatus(errno, "cannot create '" + temp + "'");
  Status written = WriteExamples(source, first, n, temp, file);
  if (std::fclose(file) != 0 && written.ok()) written = ErrnoStatus(errno, "cannot write '" + temp + "'");
  if (written.ok() && std::rename(temp.c_str(), path.c_str()) != 0) {
    written = ErrnoStatus(errno, "cannot rename '" + temp + "' to '" + path + "'");
  }
  if (!written.ok()) std::remove(temp.c_str());
  return written;
}

}  // namespace cairn
