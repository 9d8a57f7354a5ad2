// The commands that run a job -- train (--local, --in-process, under
// mpirun), server and worker (standalone) -- on a CLI11 app: the `cairn`
// command's, and TrainingMain's (launch/training_main.h) for a program of
// one's own. Internal to launch/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace cairn {

struct TrainFlags {
  std::string job_path;
  bool local = false;
  bool in_process = false;
  std::optional<int> servers, workers;
  std::optional<int64_t> max_steps, epochs, log_every, test_limit;
  std::optional<uint64_t> seed;
  std::optional<std::string> bind, advertise, consistency, straggler;
  std::optional<bool> overlap;
  std::vector<std::string> sets;  // --set section.field=VALUE
  std::string summary_path;
  std::string metrics_path;
  std::optional<std::string> model_dir;
  std::string server_model_dir;  // cairn server --model-dir
  bool fresh = false;
  std::optional<int64_t> snapshot_every_steps;
  std::optional<double> snapshot_every_secs;
  // Standalone processes.
  std::string cluster_path;
  int index = 0;
  int io_threads = 1;
  // Authentication.
  std::string secret_file;
  bool insecure = false;
};

// Adds train, server and worker to `app`; Run runs the one it parsed.
class JobCommands {
 public:
  explicit JobCommands(CLI::App& app);
  JobCommands(const JobCommands&) = delete;  // the app holds references to the flags
  JobCommands& operator=(const JobCommands&) = delete;
  // The exit code of the command `app` parsed, or -1 if it is none of these.
  int Run(const CLI::App& app, int* argc, char*** argv);

 private:
  TrainFlags train_, server_, worker_;
};

// CLI11 reads "-1" into an unsigned option as 2^64 - 1: this refuses the sign.
const CLI::Validator& NonNegative();

// A server's connections, a snapshot's files: more descriptors than the
// usual soft limit of 1024.
void RaiseFileLimit();

// Logs `s` as an error; 1.
int Fail(const Status& s);

}  // namespace cairn
