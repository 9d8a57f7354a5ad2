// data.kind: criteo_tsv: click logs in the Criteo Display Advertising
// format, read into memory, and written from any ClickSource.
//
// The format (the Kaggle challenge's train.txt, the 1TB set's day_N): one
// example a line, 40 fields separated by tabs:
//
//   label <TAB> I1 ... I13 <TAB> C1 ... C26
//
// label is 0 or 1; I1..I13 are decimal integers in [-2^31 + 1, 2^31 - 1];
// C1..C26 are strings (Criteo's are 8 lowercase hex digits, hashed ids of
// their own); an empty field is a missing value. Lines end in "\n" or
// "\r\n"; the last may lack it. Files may be gzip-compressed (detected).
// Criteo's unlabelled test.txt (39 fields) is not this format.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "worker/click_data.h"

namespace cairn {

// Slot `slot`'s (0-based: C1 is 0) id for the categorical text `text`:
// XXH3_64bits_withSeed(text, size, seed = slot) with the top bit cleared,
// so ids are in [0, 2^63) and kMissingId stays free. Other tools can
// reproduce it (Python: xxhash.xxh3_64_intdigest(text, seed=slot) & (2**63 - 1)).
int64_t CriteoCategoryId(int slot, std::string_view text);

struct CriteoTsvOptions {
  std::vector<std::string> paths;  // read in this order, as one log
  // false: a malformed line is an error (DataLoss naming file:line);
  // true: it is skipped and counted (skipped_lines()).
  bool skip_malformed = false;
  int64_t limit = 0;  // read at most this many examples (0: all)
};

// The examples of some TSV files, loaded at Open into arrays of 261 bytes
// an example (a uint8 label, int32 counts, int64 ids); Read copies from them.
class CriteoTsv final : public ClickSource {
 public:
  // NotFound (or another file error) names a file that cannot be opened;
  // DataLoss names the file and line of a malformed line (unless skipped)
  // or a corrupt gzip stream; InvalidArgument if `paths` is empty.
  static StatusOr<std::unique_ptr<CriteoTsv>> Open(const CriteoTsvOptions& options);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Status Read(int64_t first, int64_t n, ClickBatch* batch) const override;
  Status Gather(std::span<const int64_t> indices, ClickBatch* batch) const override;

  // Malformed lines skipped (skip_malformed), and the first one's error
  // (OK when none was).
  int64_t skipped_lines() const { return skipped_lines_; }
  const Status& first_skipped() const { return first_skipped_; }

 private:
  CriteoTsv() = default;
  Status Load(const std::string& path, const CriteoTsvOptions& options);
  // Parses one line and appends its example; its error names no place.
  Status Append(std::string_view line);
  void CopyRow(int64_t from, int64_t to, ClickBatch* batch) const;

  // Constant after Open.
  std::vector<uint8_t> labels_;
  std::vector<int32_t> counts_;  // [size, kClickCounts]
  std::vector<int64_t> ids_;     // [size, kClickSlots]
  int64_t skipped_lines_ = 0;
  Status first_skipped_;
};

// Writes examples [first, first + n) of `source` to `path` in the format
// above: labels as 0 or 1, counts in decimal, ids as lowercase hex of at
// least 8 digits (16 for ids >= 2^32), missing values as empty fields. So
// reading the file back gives the same labels and counts, and per slot ids
// that map one-to-one to the source's. The file appears whole or not at
// all: it is written beside `path` and renamed over it.
Status WriteCriteoTsv(const ClickSource& source, int64_t first, int64_t n, const std::string& path);

}  // namespace cairn
