// `cairn plot FILE... --out PNG`: a PNG from a metrics file or a bench
// result, drawn by gnuplot (Debian's gnuplot-nox, its pngcairo terminal).
//
// What is drawn depends on the first file:
//   - a metrics file (`cairn train --metrics`, JSON lines): training loss
//     against --x (step, global_step or seconds), one line per file and
//     worker, and beside it the chief's evaluations (test accuracy or AUC)
//     against the same axis; several runs overlay.
//   - `cairn bench train --json`: examples/s of each run, by model width.
//   - `cairn bench pushpull --json`: GB/s of the raw-socket baseline, push
//     and pull, by cluster shape and value size.
//   - `cairn bench snapshot --json` (one result, or the README's
//     {"servers_1": ..., "servers_2": ...}): snapshot write and restore GB/s
//     beside raw RocksDB's.
// The data and the gnuplot script are written next to the PNG (PNG + ".d/")
// so that a figure can be redrawn or restyled by hand.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace cairn {

struct PlotOptions {
  std::vector<std::string> inputs;
  std::string out;               // the PNG
  std::string x = "step";        // metrics: step | global_step | seconds
  std::string gnuplot = "gnuplot";
  std::string title;             // "" : from the input
};

// NotFound for a missing input; InvalidArgument for one that is none of the
// kinds above (or mixes them); FailedPrecondition if gnuplot is missing.
Status Plot(const PlotOptions& options);

void AddPlotCommand(CLI::App& app);
// -1 if `plot` was not the subcommand; else the exit code.
int RunPlotCommand(CLI::App& app);

}  // namespace cairn
