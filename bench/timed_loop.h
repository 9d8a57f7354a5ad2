// TimedLoop: runs synchronous calls from several threads for a fixed time and
// measures aggregate throughput and per-call latency.
//
// Each thread repeats one call (depth 1: the next call starts when the last
// returns) until the measured window ends. Calls that start during the warmup
// are not counted, so connections, allocator caches and page tables are warm
// before anything is measured. Every benchmark in bench/ uses this one loop,
// so a baseline and the system it is compared with are timed the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"

namespace cairn {

struct TimedLoopOptions {
  double warmup_seconds = 0.3;  // calls starting before this are not counted
  double seconds = 2.0;         // length of the measured window
};

// What measured runs of one workload did, summed over threads (and over runs
// once merged).
struct Measurement {
  uint64_t bytes = 0;               // value bytes moved by counted calls
  uint64_t calls = 0;               // counted calls
  double seconds = 0;               // measured time: warmup end to the last counted call's end
  std::vector<double> latencies_us; // every counted call, ascending
  // What the measured time cost this process, and what others used meanwhile.
  double self_cpu_seconds = 0;
  double other_cpu_seconds = 0;
  uint64_t page_faults = 0;         // minor faults
  uint64_t context_switches = 0;    // voluntary + involuntary

  // Throughput in GB/s (1e9 bytes per second); 0 when nothing was counted.
  double gbps() const { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0.0; }
  // Nearest-rank latency percentiles; 0 when nothing was counted.
  double p50_us() const { return Percentile(0.50); }
  double p99_us() const { return Percentile(0.99); }
  double Percentile(double p) const;
  // Average cores busy while measuring: this process, and everything else
  // (load that competed with the benchmark for the same cores).
  double self_cores() const { return seconds > 0 ? self_cpu_seconds / seconds : 0.0; }
  double other_cores() const { return seconds > 0 ? other_cpu_seconds / seconds : 0.0; }
  // This process's CPU time per counted call, in microseconds.
  double cpu_us_per_call() const { return calls > 0 ? self_cpu_seconds * 1e6 / static_cast<double>(calls) : 0.0; }

  // Adds another measured run of the same workload.
  void Merge(const Measurement& other);
};

// One thread's work: `call` makes one synchronous call that moves `bytes`
// value bytes. It runs on a thread of its own and must be safe to run
// concurrently with the other tasks' calls.
struct TimedTask {
  std::function<Status()> call;
  uint64_t bytes = 0;
};

// Runs each task on its own thread, all starting together, and returns the
// aggregate. The first failed call stops every thread; its Status is returned.
StatusOr<Measurement> RunTimedLoop(const std::vector<TimedTask>& tasks, const TimedLoopOptions& options);

}  // namespace cairn
