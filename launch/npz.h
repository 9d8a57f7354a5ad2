// Writing NumPy .npz archives: a zip of .npy files (format 1.0, or 2.0/3.0
// when a header needs it), stored uncompressed, with Zip64 records when an
// archive or a member passes 4 GiB. numpy.load(path) reads the result;
// array "dense_0/W" becomes key "dense_0/W".
#pragma once

#include <cstdint>
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

class NpzWriter;
namespace npz_internal {
// Not part of the API: NpzWriter::Create with the size at which Zip64
// records start (the zip format's 0xFFFFFFFF). Tests pass 0, so that every
// member and the archive take the Zip64 route without writing 4 GiB.
StatusOr<std::unique_ptr<NpzWriter>> CreateNpzWriter(const std::string& path, uint64_t zip64_limit);
}  // namespace npz_internal

// Writes an archive one array at a time, so that only the array being added
// needs to be in memory. Everything goes to a temporary file beside `path`;
// Finish adds the zip directory, syncs, and renames it over `path`. A
// writer destroyed without a successful Finish removes its temporary file:
// a failed export leaves no partial archive.
//
// Not thread-safe.
class NpzWriter {
 public:
  static StatusOr<std::unique_ptr<NpzWriter>> Create(const std::string& path);
  ~NpzWriter();
  NpzWriter(const NpzWriter&) = delete;
  NpzWriter& operator=(const NpzWriter&) = delete;

  // Appends `array`. InvalidArgument (and nothing written) for an empty,
  // repeated or over-long name or an unsupported dtype. A write error is
  // returned by this call and by every later one: the archive is lost.
  Status Add(const NpzArray& array);
  // Completes the archive at `path`. Nothing may be added after it.
  Status Finish();

 private:
  friend StatusOr<std::unique_ptr<NpzWriter>> npz_internal::CreateNpzWriter(const std::string& path,
                                                                            uint64_t zip64_limit);
  struct State;
  explicit NpzWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// Writes `arrays` to `path` (replacing it) with an NpzWriter.
Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays);

}  // namespace cairn
