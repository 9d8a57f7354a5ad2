// `cairn bench snapshot`'s figures for one round, and how they are shown:
// a table per phase with medians and the targets for people, JSON for
// tools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/scratch_dir.h"
#include "bench/snapshot_bench.h"

namespace cairn {

// The bench's model and write chunks (shown in the JSON's options).
inline constexpr int kSnapshotBenchVariables = 4;
inline constexpr uint64_t kSnapshotBenchChunkBytes = uint64_t{4} << 20;  // as SnapshotWriteOptions::chunk_bytes

inline double SnapshotGbps(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e9 : 0;
}
inline double SnapshotRatio(double a, double b) { return b > 0 ? a / b : 0; }
// The median (of an even count, the mean of the middle two); 0 for none.
double SnapshotMedian(std::vector<double> v);

struct SnapshotRound {
  int64_t step = 0;
  uint64_t bytes = 0;              // value and slot bytes, all servers
  // The stall.
  double begin_seconds = 0;        // Saver::Begin, as the chief waits for it
  double copy_seconds = 0;         // the slowest server's copy (SnapshotPrepareReply.copy_seconds)
  uint64_t begin_faults = 0;       // minor page faults of this process during Begin
  uint64_t finish_faults = 0;      // ... during Finish (the write)
  double memcpy_prefaulted = 0;    // memcpy of `bytes` between two touched buffers
  double memcpy_fresh = 0;         // memcpy of `bytes` into never-touched pages (a new mmap)
  // The write.
  double write_seconds = 0;        // the slowest server's WriteServerSnapshot
  double total_seconds = 0;        // Begin to committed manifest
  double raw_write_seconds = 0;    // MeasureRawRocksDb, one thread per server at once: the slowest
  double raw_read_seconds = 0;
  // The restore, onto a fresh cluster.
  double restore_seconds = 0;      // Saver::Restore
  uint64_t restore_faults = 0;
  double rollback_seconds = 0;     // Saver::Restore of the same snapshot onto the live (original) cluster
  double other_cores = 0;          // other processes' CPU use during Begin..Finish (noise)
  // What the cut costs the pushes after it (sparse only: a table's records
  // are copied after Begin, and the first update of a row not yet copied
  // saves it first).
  double push_seconds = 0;         // one PushSpread before Begin
  double push_in_cut_seconds = 0;  // the same push at once after Begin, while the server copies

  double stall_over_memcpy_fresh() const { return SnapshotRatio(begin_seconds, memcpy_fresh); }
  double stall_over_memcpy_prefaulted() const { return SnapshotRatio(begin_seconds, memcpy_prefaulted); }
  double write_gbps() const { return SnapshotGbps(bytes, write_seconds); }
  double end_to_end_gbps() const { return SnapshotGbps(bytes, total_seconds); }
  double raw_write_gbps() const { return SnapshotGbps(bytes, raw_write_seconds); }
  double restore_gbps() const { return SnapshotGbps(bytes, restore_seconds); }
  double rollback_gbps() const { return SnapshotGbps(bytes, rollback_seconds); }
  double raw_read_gbps() const { return SnapshotGbps(bytes, raw_read_seconds); }
  double write_over_raw() const { return SnapshotRatio(write_gbps(), raw_write_gbps()); }
  double restore_over_raw() const { return SnapshotRatio(restore_gbps(), raw_read_gbps()); }
};

// The stall, write and restore tables (every round and the median), the
// targets, and what each column measures.
std::string FormatSnapshotReport(const std::vector<SnapshotRound>& rounds);

// Every figure: the options, the machine, each round's and the medians.
nlohmann::json SnapshotRoundsJson(const SnapshotBenchOptions& o, const MachineNote& m,
                                  const std::vector<SnapshotRound>& rounds);

}  // namespace cairn
