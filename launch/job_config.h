// JobConfig: a training job as written in its YAML file, after validation.
//
// Every field has a default; an unknown key, a wrong type or an out-of-range
// value is an InvalidArgument naming the field ("train.batch_size: ...").
// Command-line flags override fields after parsing (see cairn_main.cc).
#pragma once

#include <cstdint>
#include <string>

#include "common/messages.h"
#include "common/status.h"

namespace cairn {

struct DataConfig {
  std::string kind = "synthetic_linear";  // synthetic_linear
  int64_t examples = 100000;
  int64_t features = 1000;
  double noise_stddev = 0.01;
  uint64_t seed = 7;
};

struct TrainConfig {
  int64_t batch_size = 100;
  int64_t epochs = 2;
  int64_t max_steps = 0;          // per worker; 0: no cap
  int64_t log_every_steps = 200;  // progress line period (chief)
  uint64_t seed = 1;
};

struct ClusterConfig {
  int servers = 1;
  int workers = 2;
  std::string consistency = "async";
  std::string bind = "127.0.0.1";   // address servers listen on
  std::string advertise;            // address workers dial; default: bind, or the host name for 0.0.0.0
  uint64_t split_threshold_bytes = uint64_t{2} << 20;
  int64_t timeout_ms = 30000;       // deadline of each push/pull
};

struct JobConfig {
  std::string name = "job";
  std::string model = "linear_regression";
  DataConfig data;
  TrainConfig train;
  OptimizerSpec optimizer;
  ClusterConfig cluster;
};

// Parses and validates a job file.
StatusOr<JobConfig> LoadJobConfig(const std::string& path);
// Parses YAML text (for tests).
StatusOr<JobConfig> ParseJobConfig(const std::string& yaml_text);
// Validates cross-field rules (after flag overrides, too).
Status ValidateJobConfig(const JobConfig& config);

}  // namespace cairn
