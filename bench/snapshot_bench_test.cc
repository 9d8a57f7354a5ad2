#include "bench/snapshot_bench.h"

#include <gtest/gtest.h>

namespace cairn {
namespace {

// The bench's real path on a small sparse-only model: a push lands while
// the server copies the table after the cut, and each round's restore must
// still give back the rows as of the cut (MeasureSnapshots fails otherwise).
TEST(SnapshotBench, ASparseOnlyModelSnapshotsAndRestoresTheRowsAsOfTheCut) {
  SnapshotBenchOptions o;
  o.servers = 1;
  o.param_mib = 0;
  o.sparse_rows = 200000;  // 49 cut chunks; the spread push touches every one
  o.optimizer = "adagrad";
  o.rounds = 2;
  StatusOr<nlohmann::json> j = MeasureSnapshots(o);
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_EQ((*j)["rounds"].size(), 2u);
  EXPECT_EQ((*j)["bytes"].get<uint64_t>(), uint64_t{200000} * (8 + 16 * 4 + 16 * 4));
  for (const auto& r : (*j)["rounds"]) EXPECT_GT(r["push_in_cut_seconds"].get<double>(), 0) << r.dump();
}

}  // namespace
}  // namespace cairn
