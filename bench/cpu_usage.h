// CpuUsage: what a measurement cost this process in CPU time, page faults
// and context switches, and how much CPU every other process used meanwhile.
//
// A loopback benchmark shares the cores it measures with whatever else runs:
// other processes' CPU time is reported next to each result so a reader can
// tell a slow system from a busy machine. Faults and context switches per
// call point at where a slow system spends its time (fresh buffer pages,
// thread hand-offs) without a profiler.
#pragma once

#include <cstdint>

namespace cairn {

// Cumulative counters at one instant.
struct CpuTimes {
  double self = 0;                // this process, user + system seconds (getrusage)
  uint64_t minor_faults = 0;      // this process
  uint64_t context_switches = 0;  // this process, voluntary + involuntary
  double machine_busy = 0;        // every core, all but idle and iowait (/proc/stat)
  bool machine_known = false;     // false if /proc/stat was unreadable
};

// Reads the counters now. Never fails: a missing /proc/stat leaves
// machine_known false.
CpuTimes SampleCpuTimes();

// The difference between two samples taken `seconds` apart.
struct CpuUsage {
  double self_cores = 0;          // average cores this process kept busy
  double other_cores = 0;         // the same for everything else; 0 when unknown
  uint64_t minor_faults = 0;
  uint64_t context_switches = 0;
};
CpuUsage CpuUsageBetween(const CpuTimes& begin, const CpuTimes& end, double seconds);

}  // namespace cairn
