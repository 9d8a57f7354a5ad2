// Test helpers: read a committed snapshot back shard by shard, and list every
// difference between two snapshots of the same step.
#pragma once

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/tensor.h"
#include "common/snapshot/model_dir.h"
#include "common/snapshot/snapshot_db.h"
#include "common/snapshot/snapshot_reader.h"

namespace cairn::testing {

// "" if equal; otherwise how many elements differ and where the first is.
inline std::string FirstDifference(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) return std::string("dtype ") + DTypeName(a.dtype()) + " vs " + DTypeName(b.dtype());
  if (a.shape() != b.shape()) return "shape differs";
  if (std::memcmp(a.raw(), b.raw(), a.byte_size()) == 0) return "";
  const size_t width = a.byte_size() / std::max<int64_t>(1, a.num_elements());
  int64_t first = -1, count = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    if (std::memcmp(static_cast<const char*>(a.raw()) + i * width, static_cast<const char*>(b.raw()) + i * width,
                    width) != 0) {
      if (first < 0) first = i;
      ++count;
    }
  }
  std::ostringstream out;
  out << count << " of " << a.num_elements() << " elements differ, first at " << first;
  if (a.dtype() == DType::kFloat32) out << ": " << a.data<float>()[first] << " vs " << b.data<float>()[first];
  if (a.dtype() == DType::kInt64) out << ": " << a.data<int64_t>()[first] << " vs " << b.data<int64_t>()[first];
  return out.str();
}

// What differs between two manifests: step, global step, server count and
// every worker's data position.
inline std::vector<std::string> ManifestDifferences(const SnapshotManifest& a, const SnapshotManifest& b) {
  std::vector<std::string> diffs;
  if (a.step != b.step) diffs.push_back("manifest step");
  if (a.global_step != b.global_step) {
    diffs.push_back("global_step " + std::to_string(a.global_step) + " vs " + std::to_string(b.global_step));
  }
  if (a.num_servers != b.num_servers) diffs.push_back("num_servers");
  if (a.workers.size() != b.workers.size()) diffs.push_back("worker count in manifest");
  for (size_t w = 0; w < std::min(a.workers.size(), b.workers.size()); ++w) {
    const WorkerState& x = a.workers[w];
    const WorkerState& y = b.workers[w];
    if (x.steps != y.steps || x.epoch != y.epoch || x.step_in_epoch != y.step_in_epoch || x.seed != y.seed) {
      diffs.push_back("worker " + std::to_string(w) + " position (steps " + std::to_string(x.steps) + " vs " +
                      std::to_string(y.steps) + ", epoch " + std::to_string(x.epoch) + " vs " +
                      std::to_string(y.epoch) + ", batch " + std::to_string(x.step_in_epoch) + " vs " +
                      std::to_string(y.step_in_epoch) + ")");
    }
  }
  return diffs;
}

// Every difference between snapshot `step` of model directories `a` and `b`:
// the manifests (ManifestDifferences), and every part (values and each
// optimizer slot) of every variable, each gathered across the servers
// through SnapshotReader. `parts_compared`, if given, counts the parts.
inline std::vector<std::string> SnapshotDifferences(const std::string& a, const std::string& b, int64_t step,
                                                    int* parts_compared = nullptr) {
  StatusOr<std::unique_ptr<SnapshotReader>> ra = SnapshotReader::Open(a, step);
  StatusOr<std::unique_ptr<SnapshotReader>> rb = SnapshotReader::Open(b, step);
  if (!ra.ok() || !rb.ok()) {
    return {"cannot open snapshot " + std::to_string(step) + ": " + ra.status().ToString() + " / " +
            rb.status().ToString()};
  }
  const SnapshotManifest& ma = (*ra)->manifest();
  const SnapshotManifest& mb = (*rb)->manifest();
  std::vector<std::string> diffs = ManifestDifferences(ma, mb);
  for (const ManifestVariable& v : ma.variables) {
    const std::string& name = v.spec.name;
    const ManifestVariable* other = mb.FindVariable(name);
    if (!other) {
      diffs.push_back(name + ": missing in " + b);
      continue;
    }
    if (other->slots != v.slots || other->spec.shape != v.spec.shape || other->spec.dtype != v.spec.dtype) {
      diffs.push_back(name + ": layout differs");
      continue;
    }
    for (size_t part = 0; part <= v.slots.size(); ++part) {
      const std::string what = name + (part == 0 ? "" : " slot " + v.slots[part - 1]);
      StatusOr<Tensor> ta = (*ra)->ReadPart(name, static_cast<int>(part));
      StatusOr<Tensor> tb = (*rb)->ReadPart(name, static_cast<int>(part));
      if (!ta.ok() || !tb.ok()) {
        diffs.push_back(what + ": " + ta.status().ToString() + " / " + tb.status().ToString());
        continue;
      }
      if (std::string d = FirstDifference(*ta, *tb); !d.empty()) diffs.push_back(what + ": " + d);
      if (parts_compared) ++*parts_compared;
    }
  }
  for (const ManifestVariable& v : mb.variables) {
    if (!ma.FindVariable(v.spec.name)) diffs.push_back(v.spec.name + ": missing in " + a);
  }
  return diffs;
}

// Calls `visit` for every part (0 the values, 1 + i slot i) of every shard
// that committed snapshot `step` in `dir` lists, opening each server's
// database once and checking that each record is of that step and of the
// rows the manifest gives it. Anything unreadable is a test failure.
using ShardPartVisitor = std::function<void(const SnapshotManifest& manifest, const ManifestShard& shard,
                                            const ShardRecord& record, int part, const Tensor& bytes)>;
inline void ForEachShardPart(const std::string& dir, int64_t step, const ShardPartVisitor& visit) {
  StatusOr<SnapshotManifest> m = ReadManifest(dir, step);
  ASSERT_TRUE(m.ok()) << m.status();
  std::map<int, std::unique_ptr<SnapshotDb>> dbs;
  for (const ManifestShard& ms : m->shards) {
    std::unique_ptr<SnapshotDb>& db = dbs[ms.server];
    if (!db) {
      StatusOr<std::unique_ptr<SnapshotDb>> opened = OpenSnapshotDb(ServerDbPath(dir, step, ms.server));
      ASSERT_TRUE(opened.ok()) << opened.status();
      db = std::move(*opened);
      EXPECT_EQ(db->step(), step);
    }
    const ShardRecord* record = db->Find(ms.variable);
    EXPECT_NE(record, nullptr) << ms.variable << " on server " << ms.server;
    if (!record) continue;
    EXPECT_EQ(record->step, step) << ms.variable;
    EXPECT_EQ(record->info.row_begin, ms.row_begin) << ms.variable;
    EXPECT_EQ(record->info.row_end, ms.row_end) << ms.variable;
    for (int p = 0; p < static_cast<int>(record->part_bytes.size()); ++p) {
      StatusOr<Tensor> part = db->ReadPart(ms.variable, p);
      EXPECT_TRUE(part.ok()) << part.status();
      if (part.ok()) visit(*m, ms, *record, p, *part);
    }
  }
}

}  // namespace cairn::testing
