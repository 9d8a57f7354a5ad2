// Fuzzes the cluster-file parser (launch/cluster_file.h): ParseClusterFile.
//
// Properties: no crash, no exception out of ParseClusterFile, no sanitizer
// report; failures are InvalidArgument; a file that parses names at least
// one server, every port in [1, 65535], and 1 to 1024 workers; a relative
// secret_file comes back relative to the cluster file's directory.
#include <cstdint>
#include <string>

#include "launch/cluster_file.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string bind, secret_file;
  StatusOr<ClusterSpec> spec = ParseClusterFile(text, "/fuzz/cluster.yaml", &bind, &secret_file);
  if (!spec.ok()) {
    FUZZ_CHECK(spec.status().code() == StatusCode::kInvalidArgument, "a cluster-file failure that is not InvalidArgument");
    return 0;
  }
  FUZZ_CHECK(spec->num_servers() >= 1, "a cluster without servers parsed");
  for (const Endpoint& e : spec->servers) FUZZ_CHECK(e.port != 0, "a server with port 0 parsed");
  FUZZ_CHECK(spec->num_workers >= 1 && spec->num_workers <= 1024, "a worker count out of range parsed");
  if (!secret_file.empty() && secret_file[0] != '/') {
    FUZZ_CHECK(false, "a relative secret_file is not anchored at the cluster file's directory");
  }
  if (!secret_file.empty() && text.find("secret_file: /") == std::string::npos) {
    FUZZ_CHECK(secret_file.rfind("/fuzz/", 0) == 0 || secret_file[0] == '/', "a relative secret_file moved");
  }
  return 0;
}
