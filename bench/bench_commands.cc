#include "bench/bench_commands.h"

namespace cairn {

void AddBenchCommands(CLI::App& app) {
  app.add_subcommand("bench", "Cluster benchmarks")->require_subcommand(1);
}

int RunBenchCommands(CLI::App& app) { return 0; }

}  // namespace cairn
