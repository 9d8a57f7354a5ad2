// CpuUsage: how much CPU this process used during a measurement, and how much
// every other process on the machine did.
//
// A loopback benchmark shares the cores it measures with whatever else runs:
// other processes' CPU time is reported next to each result so a reader can
// tell a slow system from a busy machine.
#pragma once

namespace cairn {

// Cumulative CPU seconds at one instant.
struct CpuTimes {
  double self = 0;          // this process, user + system (getrusage)
  double machine_busy = 0;  // every core, all but idle and iowait (/proc/stat); 0 if unreadable
  bool machine_known = false;
};

// Reads both counters now. Never fails: a missing /proc/stat leaves
// machine_known false.
CpuTimes SampleCpuTimes();

// Average cores in use over `seconds` between two samples.
struct CpuUsage {
  double self_cores = 0;
  double other_cores = 0;  // machine busy minus this process; 0 when unknown
};
CpuUsage CpuUsageBetween(const CpuTimes& begin, const CpuTimes& end, double seconds);

}  // namespace cairn
