// Writing NumPy .npz archives: a zip of .npy files (format 1.0, or 2.0/3.0
// when a header needs it), stored uncompressed, with Zip64 records when an
// archive or a member passes 4 GiB. numpy.load(path) reads the result;
// array "dense_0/W" becomes key "dense_0/W".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"

namespace cairn {

struct NpzArray {
  std::string name;   // the key numpy.load gives it (".npy" is appended inside the archive)
  Tensor value;       // float32 -> '<f4', int64 -> '<i8'; C order; shape [] is a 0-d array
};

// Writes `arrays` to `path` (replacing it): to a temporary file first,
// renamed into place when complete, so a failed export leaves no partial
// archive. InvalidArgument for an empty or duplicate name.
Status WriteNpz(const std::string& path, const std::vector<NpzArray>& arrays);

}  // namespace cairn
