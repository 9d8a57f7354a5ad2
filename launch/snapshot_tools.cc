#include "launch/snapshot_tools.h"

namespace cairn {

void AddSnapshotTools(CLI::App& app) { (void)app; }
int RunSnapshotTools(CLI::App& app) {
  (void)app;
  return -1;
}

}  // namespace cairn
