// Fuzzes the job-file parser (launch/job_config.h): ParseJobConfig on
// arbitrary text.
//
// Properties: no crash, no exception out of ParseJobConfig (it converts
// yaml-cpp's at the edge), no sanitizer report; failures are
// InvalidArgument; a job that parses keeps its text and passes
// ValidateJobConfig again.
#include <cstdint>
#include <string>

#include "launch/job_config.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cairn;
  const std::string text(reinterpret_cast<const char*>(data), size);
  StatusOr<JobConfig> c = ParseJobConfig(text);
  if (!c.ok()) {
    FUZZ_CHECK(c.status().code() == StatusCode::kInvalidArgument, "a job-file failure that is not InvalidArgument");
    return 0;
  }
  FUZZ_CHECK(c->text == text, "the parsed job does not keep its text");
  FUZZ_CHECK(ValidateJobConfig(*c).ok(), "a parsed job fails validation");
  return 0;
}
