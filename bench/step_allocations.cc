// step_allocations: what one warm training step allocates (issue 14's
// "a step allocates nothing once warm — measure it").
//
//   build/bin/step_allocations [--hidden 256,128] [--batch 128] [--steps 20] [--sites N] [--expect-none]
//                              [--cluster]
//
// Runs the Fashion-MNIST-shaped MLP (784 inputs, 10 classes, Adam) in one
// process over an InProcessStore on fixed synthetic data: 10 steps to warm
// up, then counts every malloc, calloc and realloc of --steps steps (C++'s
// operator new included, which calls malloc) and prints the mean per step:
// how many, how many bytes, and how many of them are 64 KiB or larger (the
// tensors), with the minor page faults and the wall time per step; --sites N
// also prints the N most frequent allocating call stacks; --expect-none
// fails (exit 1) if any step allocated (a ctest runs it so). Its own
// binary, since it replaces malloc for the whole process. The steps run
// through Session::Run's form that fills the caller's output vector.
// --cluster runs the step against one real server over loopback instead
// (started in this process, so its allocations are counted too).
#include <dlfcn.h>
#include <execinfo.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/asio_transport.h"
#include "common/event_loop.h"
#include "ps/in_process_store.h"
#include "ps/local_cluster.h"
#include "worker/ps_client.h"
#include "worker/model.h"
#include "worker/session.h"

namespace {

std::atomic<bool> g_counting{false};
std::atomic<long> g_calls{0}, g_bytes{0}, g_large{0};

// --sites: the call stack of each counted allocation, into a fixed array
// (recording must not allocate), symbolized after the run with addr2line.
constexpr int kSiteDepth = 12;
constexpr int kMaxSites = 1 << 16;
struct Site {
  void* frames[kSiteDepth];
  int depth;
  size_t bytes;
};
Site g_sites[kMaxSites];
std::atomic<int> g_num_sites{0};
bool g_record_sites = false;
thread_local bool t_in_backtrace = false;

void Count(size_t n) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  g_calls.fetch_add(1, std::memory_order_relaxed);
  g_bytes.fetch_add(static_cast<long>(n), std::memory_order_relaxed);
  if (n >= 65536) g_large.fetch_add(1, std::memory_order_relaxed);
  if (g_record_sites && !t_in_backtrace) {
    const int i = g_num_sites.fetch_add(1, std::memory_order_relaxed);
    if (i < kMaxSites) {
      t_in_backtrace = true;
      g_sites[i].depth = backtrace(g_sites[i].frames, kSiteDepth);
      g_sites[i].bytes = n;
      t_in_backtrace = false;
    }
  }
}

// The `top` most frequent allocation stacks, each frame as addr2line names it.
void PrintSites(int top, int steps) {
  Dl_info info{};
  dladdr(reinterpret_cast<void*>(&PrintSites), &info);
  const uintptr_t base = reinterpret_cast<uintptr_t>(info.dli_fbase);
  std::map<std::vector<uintptr_t>, std::pair<long, size_t>> stacks;  // frames (below malloc) -> count, bytes
  const int n = std::min(g_num_sites.load(), kMaxSites);
  for (int i = 0; i < n; ++i) {
    std::vector<uintptr_t> frames;
    for (int f = 2; f < g_sites[i].depth; ++f) frames.push_back(reinterpret_cast<uintptr_t>(g_sites[i].frames[f]));
    auto& [count, bytes] = stacks[frames];
    ++count;
    bytes += g_sites[i].bytes;
  }
  std::vector<std::pair<long, std::vector<uintptr_t>>> order;
  for (const auto& [frames, cb] : stacks) order.push_back({cb.first, frames});
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (int k = 0; k < top && k < static_cast<int>(order.size()); ++k) {
    std::printf("\n%.1f per step:\n", static_cast<double>(order[k].first) / steps);
    std::string cmd = "addr2line -f -C -s -p -e /proc/self/exe";
    char path[4096];
    const ssize_t len = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (len > 0) cmd = "addr2line -f -C -s -p -e " + std::string(path, static_cast<size_t>(len));
    for (uintptr_t a : order[k].second) {
      char hex[32];
      std::snprintf(hex, sizeof hex, " 0x%lx", static_cast<unsigned long>(a - base - 1));
      cmd += hex;
    }
    std::fflush(stdout);
    if (std::system(cmd.c_str()) != 0) std::printf("  (addr2line failed)\n");
  }
}

}  // namespace

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* malloc(size_t n) {
  Count(n);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  Count(a * b);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  Count(n);
  return __libc_realloc(p, n);
}
}

int main(int argc, char** argv) {
  using namespace cairn;
  std::vector<int64_t> hidden = {256, 128};
  int64_t batch = 128, steps = 20;
  int sites = 0;
  bool expect_none = false, cluster = false;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--expect-none" || flag == "--cluster") {
      (flag == "--cluster" ? cluster : expect_none) = true;
      --i;  // takes no value
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      return 2;
    }
    if (flag == "--hidden") {
      hidden.clear();
      for (char* p = argv[i + 1]; *p;) {
        hidden.push_back(std::strtoll(p, &p, 10));
        if (*p == ',') ++p;
      }
    } else if (flag == "--batch") {
      batch = std::strtoll(argv[i + 1], nullptr, 10);
    } else if (flag == "--sites") {
      sites = std::atoi(argv[i + 1]);
    } else if (flag == "--steps") {
      steps = std::strtoll(argv[i + 1], nullptr, 10);
    } else {
      std::fprintf(stderr,
                   "unknown flag %s (--hidden LIST, --batch N, --steps N, --sites N, --expect-none, --cluster)\n",
                   flag.c_str());
      return 2;
    }
  }
  if (batch < 1 || steps < 1 || hidden.empty()) {
    std::fprintf(stderr, "--batch and --steps must be >= 1 and --hidden non-empty\n");
    return 2;
  }
  Graph graph;
  ModelConfig mc;
  mc.kind = "mlp";
  mc.features = 784;
  mc.classes = 10;
  mc.hidden = hidden;
  StatusOr<Model> model = BuildModel(mc, 0.001, &graph);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  InProcessStore in_process;
  VariableStore* store = &in_process;
  // --cluster: one server and this worker's client, each on its own event loop.
  EventLoop server_loop(1), worker_loop(1);
  std::unique_ptr<LocalCluster> servers;
  std::unique_ptr<AsioTransport> transport;
  std::unique_ptr<PsClient> client;
  if (cluster) {
    StatusOr<std::unique_ptr<LocalCluster>> started = LocalCluster::Start(server_loop, LocalClusterOptions{});
    if (!started.ok()) {
      std::fprintf(stderr, "cannot start a server: %s\n", started.status().ToString().c_str());
      return 1;
    }
    servers = std::move(*started);
    transport = std::make_unique<AsioTransport>(worker_loop, servers->endpoints(), servers->ClientOptions());
    client = std::make_unique<PsClient>(transport.get());
    store = client.get();
  }
  SessionOptions so;
  so.optimizer.kind = "adam";
  so.optimizer.learning_rate = 0.001;
  StatusOr<std::unique_ptr<Session>> session = Session::Create(&graph, store, so);
  if (!session.ok() || !(*session)->Initialize().ok()) {
    std::fprintf(stderr, "cannot set up the session\n");
    return 1;
  }
  Tensor x(DType::kFloat32, {batch, 784});
  Tensor y(DType::kInt64, {batch});
  for (int64_t i = 0; i < batch * 784; ++i) x.data<float>()[i] = static_cast<float>(i % 17) * 0.05f;
  for (int64_t i = 0; i < batch; ++i) y.data<int64_t>()[i] = i % 10;
  const FeedMap feeds{{model->x, x}, {model->y, y}};
  const std::vector<Output> fetches = {model->loss, model->train_op};
  std::vector<Tensor> outputs;  // reused: Session::Run's allocation-free form
  for (int i = 0; i < 10; ++i) {
    if (!(*session)->Run(fetches, feeds, &outputs).ok()) return 1;
  }
  if (sites > 0) {
    void* warm[4];
    backtrace(warm, 4);  // its first call loads libgcc, which allocates
    g_record_sites = true;
  }
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  const auto start = std::chrono::steady_clock::now();
  g_counting = true;
  for (int64_t i = 0; i < steps; ++i) {
    if (!(*session)->Run(fetches, feeds, &outputs).ok()) return 1;
  }
  g_counting = false;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  getrusage(RUSAGE_SELF, &after);
  std::string layers;
  for (int64_t h : hidden) layers += (layers.empty() ? "" : ",") + std::to_string(h);
  std::printf("MLP 784-[%s]-10, Adam, batch %lld, %s, %lld warm steps: per step %.1f allocations, "
              "%.0f bytes, %.1f of them >= 64 KiB; %.0f minor page faults; %.2f ms\n",
              layers.c_str(), static_cast<long long>(batch), cluster ? "1 server + 1 worker" : "in-process",
              static_cast<long long>(steps),
              static_cast<double>(g_calls.load()) / steps, static_cast<double>(g_bytes.load()) / steps,
              static_cast<double>(g_large.load()) / steps,
              static_cast<double>(after.ru_minflt - before.ru_minflt) / steps, ms / steps);
  if (sites > 0) PrintSites(sites, static_cast<int>(steps));
  if (expect_none && g_calls.load() > 0) {
    std::printf("FAILED: %ld allocations in %lld warm steps (run with --sites 10 to see where)\n", g_calls.load(),
                static_cast<long long>(steps));
    return 1;
  }
  return 0;
}
