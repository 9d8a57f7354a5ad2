#include "bench/connect_bench.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "bench/cpu_usage.h"
#include "bench/raw_client.h"
#include "common/event_loop.h"
#include "ps/local_cluster.h"

namespace cairn {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kTimeout = std::chrono::milliseconds(5000);

// One server and its own loop, with or without the handshake's secret.
struct ConnectTarget {
  explicit ConnectTarget(bool authenticated) : loop(1), authenticated(authenticated) {}
  EventLoop loop;
  const bool authenticated;
  std::unique_ptr<LocalCluster> cluster;  // destroyed before the loop
  Measurement m;

  Status Start() {
    LocalClusterOptions o;
    if (!authenticated) o.auth = ServerAuth{nullptr, true};
    ASSIGN_OR_RETURN(cluster, LocalCluster::Start(loop, o));
    return Status::OK();
  }

  // Connect, handshake, close.
  Status Once() {
    const ClientCredentials credentials{cluster->auth().secret, PeerRole::kWorker, 1};
    ASSIGN_OR_RETURN(RawClient c, RawClient::Connect(cluster->endpoints()[0].port, kTimeout));
    RETURN_IF_ERROR(c.Handshake(credentials, kTimeout));
    c.Close();
    return Status::OK();
  }

  // `n` connects in a row; counted unless `warmup`.
  Status Block(int n, bool warmup) {
    const CpuTimes cpu_begin = SampleCpuTimes();
    const Clock::time_point begin = Clock::now();
    for (int i = 0; i < n; ++i) {
      const Clock::time_point start = Clock::now();
      RETURN_IF_ERROR(Once().WithContext(authenticated ? "authenticated connect" : "insecure connect"));
      if (!warmup) m.latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    if (warmup) return Status::OK();
    const double seconds = std::chrono::duration<double>(Clock::now() - begin).count();
    const CpuUsage cpu = CpuUsageBetween(cpu_begin, SampleCpuTimes(), seconds);
    m.calls += static_cast<uint64_t>(n);
    m.seconds += seconds;
    m.self_cpu_seconds += cpu.self_cores * seconds;
    m.other_cpu_seconds += cpu.other_cores * seconds;
    return Status::OK();
  }
};

}  // namespace

StatusOr<std::vector<ConnectCost>> RunConnectBench(const ConnectBenchOptions& o) {
  if (o.connects < 1 || o.block < 1 || o.warmup < 0) return InvalidArgument("connect bench: counts must be positive");
  std::vector<std::unique_ptr<ConnectTarget>> targets;
  if (o.authenticated) targets.push_back(std::make_unique<ConnectTarget>(true));
  if (o.insecure) targets.push_back(std::make_unique<ConnectTarget>(false));
  if (targets.empty()) return InvalidArgument("connect bench: no mode to measure");
  for (auto& t : targets) {
    RETURN_IF_ERROR(t->Start());
    RETURN_IF_ERROR(t->Block(o.warmup, /*warmup=*/true));
  }
  for (int done = 0; done < o.connects; done += o.block) {
    for (auto& t : targets) RETURN_IF_ERROR(t->Block(std::min(o.block, o.connects - done), /*warmup=*/false));
  }
  std::vector<ConnectCost> costs;
  for (auto& t : targets) {
    std::sort(t->m.latencies_us.begin(), t->m.latencies_us.end());
    costs.push_back(ConnectCost{t->authenticated, std::move(t->m)});
  }
  return costs;
}

}  // namespace cairn
