// MetricsLog: `cairn train --metrics FILE.jsonl`.
//
// One JSON object per line: each worker's progress at every log step
// ({"event": "progress", "time": unix seconds, "worker", "seconds" of
// training, "epoch", "step", "global_step", "loss", "examples_per_sec",
// "learning_rate", and at the chief's evaluations "test_accuracy" or
// "test_auc" and "test_logloss"), and the run's events ({"event":
// "snapshot" | "snapshot_committed" | "snapshot_failed" | "recovered" |
// "server_restarted", "time", "worker", "global_step", "snapshot_step",
// "seconds", "detail"}). Each line is written and flushed whole, so a
// crashed run leaves every line it reported. `cairn plot` reads it.
//
// Thread-safe: the workers of one process share one log (ForPath).
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "worker/trainer.h"

namespace cairn {

class MetricsLog {
 public:
  // The log writing `path` for this process, created (truncating the file)
  // on the first call for that path and kept for the process's life.
  // NotFound if it cannot be written.
  static StatusOr<std::shared_ptr<MetricsLog>> ForPath(const std::string& path);
  ~MetricsLog();

  void Progress(int worker, const TrainProgress& p);
  void Event(int worker, const TrainEvent& e);

  // Where worker `worker` of a job whose workers are separate processes
  // (mpirun, standalone) writes: `path` for worker 0, "m.worker3.jsonl"
  // for worker 3 of "m.jsonl".
  static std::string WorkerPath(const std::string& path, int worker);

 private:
  explicit MetricsLog(std::FILE* file) : file_(file) {}
  void Write(const std::string& line);

  std::mutex mu_;
  std::FILE* const file_;  // guarded by mu_
};

}  // namespace cairn
