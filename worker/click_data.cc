#include "worker/click_data.h"

#include <string>

namespace cairn {

void ClickBatch::Resize(int64_t n) {
  size = n;
  labels.resize(n);
  counts.resize(n * kClickCounts);
  ids.resize(n * kClickSlots);
}

Status CheckClickRange(int64_t first, int64_t n, int64_t size) {
  if (first < 0 || n < 0 || first > size || n > size - first) {
    return OutOfRange("examples [" + std::to_string(first) + ", " + std::to_string(first) + " + " + std::to_string(n) +
                      ") are not within the source's [0, " + std::to_string(size) + ")");
  }
  return Status::OK();
}

}  // namespace cairn
