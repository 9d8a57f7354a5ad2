#include "bench/cpu_usage.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace cairn {
namespace {

double Seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; }

void ReadSelf(CpuTimes* t) {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  t->self = Seconds(u.ru_utime) + Seconds(u.ru_stime);
  t->minor_faults = static_cast<uint64_t>(u.ru_minflt);
  t->context_switches = static_cast<uint64_t>(u.ru_nvcsw) + static_cast<uint64_t>(u.ru_nivcsw);
}

// The first line of /proc/stat: "cpu user nice system idle iowait irq softirq steal ...", in clock ticks.
bool MachineBusySeconds(double* out) {
  std::ifstream f("/proc/stat");
  std::string cpu;
  unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
  if (!(f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") return false;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  *out = static_cast<double>(user + nice + system + irq + softirq + steal) / ticks;
  return true;
}

}  // namespace

CpuTimes SampleCpuTimes() {
  CpuTimes t;
  ReadSelf(&t);
  t.machine_known = MachineBusySeconds(&t.machine_busy);
  return t;
}

CpuUsage CpuUsageBetween(const CpuTimes& begin, const CpuTimes& end, double seconds) {
  CpuUsage u;
  u.minor_faults = end.minor_faults - begin.minor_faults;
  u.context_switches = end.context_switches - begin.context_switches;
  if (!(seconds > 0)) return u;
  const double self = end.self - begin.self;
  u.self_cores = self / seconds;
  if (begin.machine_known && end.machine_known) {
    // /proc/stat counts in ticks (10 ms): clamp the rounding below zero away.
    u.other_cores = std::max(0.0, (end.machine_busy - begin.machine_busy - self) / seconds);
  }
  return u;
}

}  // namespace cairn
