#include "bench/snapshot_bench.h"

namespace cairn {

void AddSnapshotBench(CLI::App& bench) { (void)bench; }
int RunSnapshotBench(CLI::App& bench) {
  (void)bench;
  return -1;
}

}  // namespace cairn
