#include "bench/timed_loop.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "bench/cpu_usage.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;

struct Window {
  Clock::time_point measure_from;  // end of warmup
  Clock::time_point stop_at;       // no call starts after this
};

// What one thread saw; merged after every thread has joined.
struct Tally {
  uint64_t bytes = 0;
  uint64_t calls = 0;
  Clock::time_point last_end;
  std::vector<double> latencies_us;
  Status status;
};

void RunTask(const TimedTask& task, const Window& window, std::atomic<bool>& stop, Tally* tally) {
  while (!stop.load(std::memory_order_relaxed)) {
    const Clock::time_point start = Clock::now();
    if (start >= window.stop_at) return;
    Status s = task.call();
    const Clock::time_point end = Clock::now();
    if (!s.ok()) {
      tally->status = s;
      stop.store(true);
      return;
    }
    if (start < window.measure_from) continue;
    tally->bytes += task.bytes;
    ++tally->calls;
    tally->last_end = end;
    tally->latencies_us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
}

Measurement Sum(const std::vector<Tally>& tallies, const Window& window) {
  Measurement m;
  Clock::time_point last_end = window.measure_from;
  for (const Tally& t : tallies) {
    m.bytes += t.bytes;
    m.calls += t.calls;
    if (t.calls > 0) last_end = std::max(last_end, t.last_end);
    m.latencies_us.insert(m.latencies_us.end(), t.latencies_us.begin(), t.latencies_us.end());
  }
  std::sort(m.latencies_us.begin(), m.latencies_us.end());
  // The window runs to the last counted call's end rather than to stop_at:
  // calls still in flight at stop_at are counted whole, so their time is too.
  m.seconds = std::chrono::duration<double>(last_end - window.measure_from).count();
  return m;
}

// Sleeps until `deadline`, or until a failed call has stopped the loop.
void SleepUntil(Clock::time_point deadline, const std::atomic<bool>& stop) {
  constexpr auto kPoll = std::chrono::milliseconds(10);
  for (auto now = Clock::now(); !stop.load() && now < deadline; now = Clock::now()) {
    std::this_thread::sleep_for(std::min<Clock::duration>(kPoll, deadline - now));
  }
}

// Samples CPU time at both ends of the measured window, from the thread that
// started the tasks (it has nothing else to do meanwhile), as cores in use.
CpuUsage WatchCpu(const Window& window, const std::atomic<bool>& stop) {
  SleepUntil(window.measure_from, stop);
  const CpuTimes begin = SampleCpuTimes();
  const Clock::time_point begin_at = Clock::now();
  SleepUntil(window.stop_at, stop);
  const CpuTimes end = SampleCpuTimes();
  return CpuUsageBetween(begin, end, std::chrono::duration<double>(Clock::now() - begin_at).count());
}

Window MakeWindow(const TimedLoopOptions& options) {
  const auto to_duration = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  Window w;
  w.measure_from = Clock::now() + to_duration(options.warmup_seconds);
  w.stop_at = w.measure_from + to_duration(options.seconds);
  return w;
}

}  // namespace

double Measurement::Percentile(double p) const {
  if (latencies_us.empty()) return 0.0;
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(latencies_us.size())));
  return latencies_us[std::min(latencies_us.size() - 1, rank == 0 ? 0 : rank - 1)];
}

void Measurement::Merge(const Measurement& other) {
  bytes += other.bytes;
  calls += other.calls;
  seconds += other.seconds;
  self_cpu_seconds += other.self_cpu_seconds;
  other_cpu_seconds += other.other_cpu_seconds;
  page_faults += other.page_faults;
  context_switches += other.context_switches;
  std::vector<double> merged;
  merged.reserve(latencies_us.size() + other.latencies_us.size());
  std::merge(latencies_us.begin(), latencies_us.end(), other.latencies_us.begin(), other.latencies_us.end(),
             std::back_inserter(merged));
  latencies_us = std::move(merged);
}

StatusOr<Measurement> RunTimedLoop(const std::vector<TimedTask>& tasks, const TimedLoopOptions& options) {
  if (tasks.empty()) return InvalidArgument("a timed loop needs at least one task");
  if (!(options.seconds > 0) || !(options.warmup_seconds >= 0)) {
    return InvalidArgument("measured seconds must be > 0 and warmup seconds >= 0");
  }
  const Window window = MakeWindow(options);
  std::atomic<bool> stop{false};
  std::vector<Tally> tallies(tasks.size());
  std::vector<std::thread> threads;
  threads.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    threads.emplace_back(RunTask, std::cref(tasks[i]), std::cref(window), std::ref(stop), &tallies[i]);
  }
  const CpuUsage cpu = WatchCpu(window, stop);
  for (std::thread& t : threads) t.join();
  for (const Tally& t : tallies) {
    if (!t.status.ok()) return t.status;
  }
  Measurement m = Sum(tallies, window);
  // CPU was sampled over [measure_from, stop_at]; scale it to the counted time.
  m.self_cpu_seconds = cpu.self_cores * m.seconds;
  m.other_cpu_seconds = cpu.other_cores * m.seconds;
  m.page_faults = cpu.minor_faults;
  m.context_switches = cpu.context_switches;
  return m;
}

}  // namespace cairn
