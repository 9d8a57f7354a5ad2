// Writing NumPy .npz archives: a zip of .npy files (format 1.0, or 2.0 when
// a header needs it), stored uncompressed, written by libzip (which adds
// the Zip64 records an archive or member past 4 GiB needs). numpy.load(path)
// reads the result; array "dense_0/W" becomes key "dense_0/W".
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"

namespace cairn {

struct NpzArray {
  std::string name;   // the key numpy.load gives it (".npy" is appended inside the archive)
  Tensor value;       // float32 -> '<f4', int64 -> '<i8'; C order; shape [] is a 0-d array
};

// An array's value, produced when the archive is written (NpzWriter::Add).
using NpzLoader = std::function<StatusOr<Tensor>()>;

class NpzWriter;
namespace npz_internal {
// Not part of the API: NpzWriter::Create whose members do not state their
// sizes up front, as lazily added ones do not, so that libzip writes Zip64
// local headers for them (tests of that route without 4 GiB of data).
StatusOr<std::unique_ptr<NpzWriter>> CreateNpzWriter(const std::string& path, bool sizes_unknown);
Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays, bool sizes_unknown);
}  // namespace npz_internal

// Collects an archive's arrays, then writes it in Finish: libzip writes the
// whole archive when it is closed, so an array added with a loader is read
// only when its turn comes and dropped once written -- one such array in
// memory at a time, however large the archive. The archive goes to a
// temporary file beside `path` and is renamed over it (then synced) only
// when complete; a writer destroyed without a successful Finish leaves
// nothing behind: a failed export leaves no partial archive.
//
// Not thread-safe.
class NpzWriter {
 public:
  static StatusOr<std::unique_ptr<NpzWriter>> Create(const std::string& path);
  ~NpzWriter();
  NpzWriter(const NpzWriter&) = delete;
  NpzWriter& operator=(const NpzWriter&) = delete;

  // Appends `array` (its value is kept, shared, until Finish). InvalidArgument
  // (and nothing added) for an empty, repeated or over-long name, one that
  // holds a NUL byte, or an unsupported dtype.
  Status Add(const NpzArray& array);
  // Appends an array whose value `load` gives when Finish writes it (in the
  // order added). A loader's error, or a value of an unsupported dtype,
  // fails Finish with it, naming the array.
  Status Add(const std::string& name, NpzLoader load);
  // Writes the archive at `path`: libzip writes it to a temporary file
  // beside it, which is synced, then renamed over `path` (the directory
  // synced after). Nothing may be added after it; after a failure the
  // writer is spent.
  Status Finish();

 private:
  friend StatusOr<std::unique_ptr<NpzWriter>> npz_internal::CreateNpzWriter(const std::string& path,
                                                                            bool sizes_unknown);
  struct State;
  explicit NpzWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Writes `arrays` to `path` (replacing it) with an NpzWriter.
Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays);

}  // namespace cairn
