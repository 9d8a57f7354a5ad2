// `cairn bench ...` subcommands.
#pragma once

#include <CLI/CLI.hpp>

namespace cairn {

// Registers the bench subcommands on `app`.
void AddBenchCommands(CLI::App& app);
// Runs the bench subcommand that `app` parsed; returns the exit code.
int RunBenchCommands(CLI::App& app);

}  // namespace cairn
