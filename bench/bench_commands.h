// `cairn bench ...` subcommands.
//
//   cairn bench pushpull [--sizes 4096,1048576,16777216] [--configs 1x1,2x2]
//                        [--seconds 2.0] [--warmup-seconds 0.3]
//                        [--rounds 4] [--loop-threads 2] [--ops push,pull,pushpull]
//                        [--auth handshake|none|both] [--connects 2000] [--json FILE]
//   cairn bench load [--seconds 60] [--hostile 500] ... (bench/load_bench.h)
//   cairn bench train JOB [--steps 400] [--servers 2] [--json FILE]
//                         [--cairn BINARY] [--timeout 600]
//
// The flags live on the CLI11 app itself (read back with Option::as), so no
// state outlives a parse outside the app.
#pragma once

#include <CLI/CLI.hpp>

namespace cairn {

// Registers the bench subcommands on `app`.
void AddBenchCommands(CLI::App& app);
// Runs the bench subcommand that `app` parsed; returns the exit code (0 on
// success, 1 with a logged reason on bad flags or a failed benchmark).
int RunBenchCommands(CLI::App& app);

}  // namespace cairn
