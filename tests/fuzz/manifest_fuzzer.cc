// Fuzzes the snapshot manifest parser (common/snapshot/manifest.h):
// DecodeManifestFile.
//
// Input: one mode byte, then the file.
//   mode & 1 == 0  the bytes are the whole file, checksum line included
//   mode & 1 == 1  the bytes are the JSON text: the harness appends the
//                  "xxh3 <hex>" line it needs, so the fuzzer reaches the
//                  JSON parser and the field decoders behind the checksum
//
// Properties: no crash, exception or sanitizer report; failures are
// DataLoss; a manifest that decodes encodes (EncodeManifestFile), and that
// file decodes to a manifest which encodes to the same bytes again.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

#include <xxhash.h>

#include "common/snapshot/manifest.h"
#include "tests/fuzz/fuzz_check.h"

namespace cairn {
namespace {

std::string WithChecksumLine(std::string json) {
  char line[32];
  std::snprintf(line, sizeof(line), "xxh3 %016" PRIx64 "\n",
                static_cast<uint64_t>(XXH3_64bits(json.data(), json.size())));
  return json + "\n" + line;
}

// What a reader of a decoded manifest does with it.
void Use(const SnapshotManifest& m) {
  for (const ManifestVariable& v : m.variables) {
    FUZZ_CHECK(m.FindVariable(v.spec.name) != nullptr, "a decoded variable cannot be found by name");
    if (ValidateSpec(v.spec).ok()) (void)v.spec.DebugString();
  }
  for (const ManifestSparseTable& t : m.sparse_tables) {
    FUZZ_CHECK(m.FindSparseTable(t.spec.name) != nullptr, "a decoded sparse table cannot be found by name");
  }
}

}  // namespace
}  // namespace cairn

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn;
  if (size == 0) return 0;
  std::string file(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] & 1) file = WithChecksumLine(std::move(file));
  StatusOr<SnapshotManifest> m = DecodeManifestFile(file, "fuzz/MANIFEST");
  if (!m.ok()) {
    FUZZ_CHECK(m.status().code() == StatusCode::kDataLoss, "a manifest failure that is not DataLoss");
    return 0;
  }
  Use(*m);
  StatusOr<std::string> encoded = EncodeManifestFile(*m);
  FUZZ_CHECK(encoded.ok(), "a decoded manifest does not encode");
  StatusOr<SnapshotManifest> again = DecodeManifestFile(*encoded, "fuzz/MANIFEST");
  FUZZ_CHECK(again.ok(), "an encoded manifest does not decode");
  StatusOr<std::string> reencoded = EncodeManifestFile(*again);
  FUZZ_CHECK(reencoded.ok() && *reencoded == *encoded, "a manifest changed on its way through a file");
  return 0;
}
