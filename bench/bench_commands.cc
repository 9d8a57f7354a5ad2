#include "bench/bench_commands.h"

#include <charconv>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bench/connect_bench.h"
#include "bench/load_bench.h"
#include "bench/pushpull_bench.h"
#include "bench/pushpull_report.h"
#include "bench/snapshot_bench.h"
#include "bench/sparse_bench.h"
#include "bench/training_bench.h"

namespace cairn {
namespace {

constexpr char kDefaultSizes[] = "4096,1048576,16777216";
constexpr char kDefaultConfigs[] = "1x1,2x2";
constexpr char kAllOps[] = "push,pull,pushpull";

void AddPushPullCommand(CLI::App& bench) {
  CLI::App* c = bench.add_subcommand(
      "pushpull", "Push/pull throughput and latency through real servers over loopback TCP, against raw sockets");
  c->add_option("--sizes", "Value sizes in bytes, comma-separated; multiples of 1024")->default_val(kDefaultSizes);
  c->add_option("--configs", "Cluster shapes SxW (servers x workers), comma-separated")->default_val(kDefaultConfigs);
  c->add_option("--seconds", "Measured seconds per workload and case, over all rounds")->default_val(2.0);
  c->add_option("--warmup-seconds", "Unmeasured seconds before each workload's first round")->default_val(0.3);
  c->add_option("--rounds", "Interleaved rounds of raw, push, pull, push+pull per case")->default_val(4);
  c->add_option("--loop-threads", "Threads of the EventLoop that servers and transports share (as cluster.io_threads)")
      ->default_val(1);
  c->add_option("--ops", "Workloads to run, comma-separated (the raw baseline always runs)")->default_val(kAllOps);
  c->add_option("--auth", "Servers with the handshake (handshake), insecure (none), or both side by side in the same "
                          "rounds, with the per-round ratio")
      ->default_val("handshake");
  c->add_option("--connects", "Connects (connect + handshake + close) timed per auth mode; 0: skip")->default_val(2000);
  c->add_option("--depth", "Also measure push and pull with this many calls in flight per worker (1: only one at "
                           "a time)")
      ->default_val(1);
  c->add_option("--json", "Also write every result as JSON to this file");
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    if (end > begin) parts.push_back(text.substr(begin, end - begin));
    begin = end + 1;
  }
  return parts;
}

StatusOr<std::vector<uint64_t>> ParseSizes(const std::string& text) {
  std::vector<uint64_t> sizes;
  for (const std::string& part : SplitCommas(text)) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || end != part.data() + part.size()) {
      return InvalidArgument("--sizes: '" + part + "' is not a byte count");
    }
    sizes.push_back(v);
  }
  return sizes;
}

StatusOr<std::vector<ClusterShape>> ParseConfigs(const std::string& text) {
  std::vector<ClusterShape> configs;
  for (const std::string& part : SplitCommas(text)) {
    StatusOr<ClusterShape> shape = ClusterShape::Parse(part);
    if (!shape.ok()) return shape.status().WithContext("--configs");
    configs.push_back(*shape);
  }
  return configs;
}

StatusOr<PushPullOps> ParseOps(const std::string& text) {
  PushPullOps ops{false, false, false};
  for (const std::string& part : SplitCommas(text)) {
    if (part == "push") ops.push = true;
    else if (part == "pull") ops.pull = true;
    else if (part == "pushpull") ops.push_pull = true;
    else return InvalidArgument("--ops: unknown workload '" + part + "' (known: " + kAllOps + ")");
  }
  return ops;
}

StatusOr<PushPullOptions> PushPullFlags(const CLI::App& c) {
  PushPullOptions o;
  ASSIGN_OR_RETURN(o.value_bytes, ParseSizes(c.get_option("--sizes")->as<std::string>()));
  ASSIGN_OR_RETURN(o.configs, ParseConfigs(c.get_option("--configs")->as<std::string>()));
  ASSIGN_OR_RETURN(o.ops, ParseOps(c.get_option("--ops")->as<std::string>()));
  o.timing.seconds = c.get_option("--seconds")->as<double>();
  o.timing.warmup_seconds = c.get_option("--warmup-seconds")->as<double>();
  o.rounds = c.get_option("--rounds")->as<int>();
  o.event_loop_threads = c.get_option("--loop-threads")->as<int>();
  ASSIGN_OR_RETURN(o.auth, ParseAuthMode(c.get_option("--auth")->as<std::string>()));
  o.connects = c.get_option("--connects")->as<int>();
  o.depth = c.get_option("--depth")->as<int>();
  RETURN_IF_ERROR(ValidatePushPullOptions(o));
  return o;
}

// Fails fast on a --json path that cannot be written, rather than after a
// minute of measuring.
Status CheckWritable(const std::string& path) {
  if (path.empty()) return Status::OK();
  std::ofstream f(path, std::ios::app);
  if (!f) return Unavailable("cannot open '" + path + "' for writing");
  return Status::OK();
}

int Fail(const Status& s) {
  spdlog::error("bench failed: {}", s.ToString());
  return 1;
}

int RunPushPull(const CLI::App& c) {
  StatusOr<PushPullOptions> options = PushPullFlags(c);
  if (!options.ok()) return Fail(options.status());
  const std::string json_path = c.get_option("--json")->as<std::string>();
  Status writable = CheckWritable(json_path);
  if (!writable.ok()) return Fail(writable.WithContext("--json"));
  StatusOr<std::vector<PushPullResult>> results = RunPushPullBench(*options);
  if (!results.ok()) return Fail(results.status());
  std::vector<ConnectCost> connects;
  if (options->connects > 0) {
    ConnectBenchOptions co;
    co.connects = options->connects;
    co.authenticated = options->auth != AuthMode::kNone;
    co.insecure = options->auth != AuthMode::kHandshake;
    StatusOr<std::vector<ConnectCost>> costs = RunConnectBench(co);
    if (!costs.ok()) return Fail(costs.status().WithContext("connection cost"));
    connects = std::move(*costs);
  }
  fmt::print("\n{}", FormatPushPullTable(*results));
  fmt::print("{}", FormatAuthCost(*results, connects));
  if (!json_path.empty()) {
    Status written = WritePushPullJson(*options, *results, connects, json_path);
    if (!written.ok()) return Fail(written);
    fmt::print("\nwrote {}\n", json_path);
  }
  return 0;
}

void AddTrainCommand(CLI::App& bench) {
  CLI::App* c = bench.add_subcommand(
      "train", "Training throughput of a job and each step's pull, push and other time: in one process with no servers, "
      "1 server + 1 worker with communication in series and overlapped, and 2 workers (each a `cairn train` run in "
      "a child process)");
  c->add_option("job", "Job file, e.g. launch/examples/fashion_mnist_mlp.yaml")->required();
  c->add_option("--steps", "Steps per worker in each measurement")->default_val(400);
  c->add_option("--servers", "Servers of the two-worker runs (the one-worker runs have 1)")->default_val(2);
  c->add_option("--rounds", "Repeat each width's runs, interleaved; ratios are medians over rounds")->default_val(1);
  c->add_option("--hidden", "Hidden layer widths to measure instead of the job's (repeatable), e.g. "
                "--hidden 256,128 --hidden 4096,4096")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  c->add_option("--set", "section.field=VALUE passed to every run's `cairn train --set` (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  c->add_option("--json", "Also write the results as JSON to this file");
  c->add_option("--cairn", "The cairn binary whose `cairn train` is measured (default: this one)");
  c->add_option("--timeout", "Seconds one `cairn train` run may take before it is killed")->default_val(600.0);
}

int RunTrain(const CLI::App& c) {
  TrainingBenchOptions o;
  o.job_path = c.get_option("job")->as<std::string>();
  o.steps = c.get_option("--steps")->as<int64_t>();
  o.servers = c.get_option("--servers")->as<int>();
  o.rounds = c.get_option("--rounds")->as<int>();
  // An option not given reads as one empty string.
  if (c.get_option("--hidden")->count() > 0) o.hidden = c.get_option("--hidden")->as<std::vector<std::string>>();
  if (c.get_option("--set")->count() > 0) o.sets = c.get_option("--set")->as<std::vector<std::string>>();
  o.json_path = c.get_option("--json")->as<std::string>();
  o.cairn_binary = c.get_option("--cairn")->as<std::string>();
  o.timeout_seconds = c.get_option("--timeout")->as<double>();
  if (o.steps < 1 || o.servers < 1 || o.rounds < 1) {
    return Fail(InvalidArgument("--steps, --servers and --rounds must be >= 1"));
  }
  if (!(o.timeout_seconds > 0)) return Fail(InvalidArgument("--timeout must be > 0"));
  Status writable = CheckWritable(o.json_path);
  if (!writable.ok()) return Fail(writable.WithContext("--json"));
  StatusOr<TrainingBenchResult> r = RunTrainingBench(o);
  if (!r.ok()) return Fail(r.status());
  return 0;
}

}  // namespace

void AddBenchCommands(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Cluster benchmarks")->require_subcommand(1);
  AddPushPullCommand(*bench);
  AddTrainCommand(*bench);
  AddSnapshotBench(*bench);
  AddSparseBench(*bench);
  AddLoadBench(*bench);
}

int RunBenchCommands(CLI::App& app) {
  CLI::App* bench = app.get_subcommand("bench");
  if (int rc = RunSnapshotBench(*bench); rc >= 0) return rc;
  if (int rc = RunSparseBench(*bench); rc >= 0) return rc;
  if (int rc = RunLoadBenchCommand(*bench); rc >= 0) return rc;
  if (bench->got_subcommand("pushpull")) return RunPushPull(*bench->get_subcommand("pushpull"));
  if (bench->got_subcommand("train")) return RunTrain(*bench->get_subcommand("train"));
  spdlog::error("no bench subcommand given");
  return 1;
}

}  // namespace cairn
