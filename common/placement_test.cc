#include "common/placement.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace cairn {
namespace {

VariableSpec Var(const std::string& name, Shape shape, DType dtype = DType::kFloat32) {
  VariableSpec spec;
  spec.name = name;
  spec.shape = std::move(shape);
  spec.dtype = dtype;
  spec.init.kind = InitKind::kGlorotUniform;
  return spec;
}

Placement MustCompute(const std::vector<VariableSpec>& specs, int servers, const PlacementOptions& options = {}) {
  StatusOr<Placement> p = Placement::Compute(specs, servers, options);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return Placement::Compute({}, 1).value();
  return std::move(p).value();
}

std::vector<ShardSlice> Slices(const Placement& p, const std::string& name) {
  StatusOr<std::vector<ShardSlice>> s = p.SlicesOf(name);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : std::vector<ShardSlice>{};
}

// Every row of every spec owned exactly once: slices sorted, contiguous from 0
// to rows, on valid servers; and the per-server views agree.
void ExpectCompleteAndDisjoint(const Placement& p, const std::vector<VariableSpec>& specs, int servers) {
  ASSERT_EQ(p.num_servers(), servers);
  std::vector<std::string> expected_names;
  for (const VariableSpec& s : specs) expected_names.push_back(s.name);
  std::sort(expected_names.begin(), expected_names.end());
  EXPECT_EQ(p.VariableNames(), expected_names);

  std::map<std::string, std::vector<ShardSlice>> by_server_view;
  for (int s = 0; s < servers; ++s) {
    for (const auto& [name, slice] : p.SlicesOnServer(s)) {
      EXPECT_EQ(slice.server, s);
      by_server_view[name].push_back(slice);
    }
  }
  EXPECT_TRUE(p.SlicesOnServer(servers).empty());
  EXPECT_TRUE(p.SlicesOnServer(-1).empty());

  std::vector<uint64_t> bytes(servers, 0);
  for (const VariableSpec& spec : specs) {
    SCOPED_TRACE(spec.DebugString());
    std::vector<ShardSlice> slices = Slices(p, spec.name);
    ASSERT_FALSE(slices.empty());
    int64_t next = 0;
    std::set<int> servers_used;
    for (const ShardSlice& slice : slices) {
      EXPECT_GE(slice.server, 0);
      EXPECT_LT(slice.server, servers);
      EXPECT_EQ(slice.row_begin, next) << "gap or overlap";
      EXPECT_GE(slice.row_end, slice.row_begin);
      EXPECT_TRUE(servers_used.insert(slice.server).second) << "two slices on server " << slice.server;
      next = slice.row_end;
      bytes[slice.server] += static_cast<uint64_t>(slice.rows()) * spec.row_bytes();
    }
    EXPECT_EQ(next, spec.rows());

    std::vector<ShardSlice> from_servers = by_server_view[spec.name];
    std::sort(from_servers.begin(), from_servers.end(),
              [](const ShardSlice& a, const ShardSlice& b) { return a.row_begin < b.row_begin; });
    EXPECT_EQ(from_servers, slices);

    StatusOr<VariableSpec> stored = p.SpecOf(spec.name);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(*stored, spec);
  }
  EXPECT_EQ(p.BytesPerServer(), bytes);
  uint64_t total = 0;
  for (const VariableSpec& spec : specs) total += spec.byte_size();
  uint64_t placed = 0;
  for (uint64_t b : p.BytesPerServer()) placed += b;
  EXPECT_EQ(placed, total);
}

void ExpectSamePlacement(const Placement& a, const Placement& b) {
  ASSERT_EQ(a.VariableNames(), b.VariableNames());
  for (const std::string& name : a.VariableNames()) {
    EXPECT_EQ(Slices(a, name), Slices(b, name)) << name;
  }
  EXPECT_EQ(a.BytesPerServer(), b.BytesPerServer());
}

std::vector<VariableSpec> RandomSpecs(std::mt19937& rng, int count) {
  std::uniform_int_distribution<int> rank_dist(0, 3);
  std::uniform_int_distribution<int> kind_dist(0, 9);
  std::vector<VariableSpec> specs;
  for (int i = 0; i < count; ++i) {
    Shape shape;
    const int rank = rank_dist(rng);
    const int kind = kind_dist(rng);
    for (int d = 0; d < rank; ++d) {
      int64_t dim;
      if (d == 0 && kind == 0) {
        dim = std::uniform_int_distribution<int64_t>(0, 3)(rng);  // tiny, maybe empty
      } else if (d == 0 && kind < 4) {
        dim = std::uniform_int_distribution<int64_t>(1000, 200000)(rng);  // often big
      } else {
        dim = std::uniform_int_distribution<int64_t>(1, 40)(rng);
      }
      shape.push_back(dim);
    }
    DType dtype = (kind == 9) ? DType::kInt64 : DType::kFloat32;
    specs.push_back(Var("v" + std::to_string(i), shape, dtype));
  }
  return specs;
}

TEST(Placement, IsIndependentOfSpecOrder) {
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 30; ++trial) {
    std::vector<VariableSpec> specs = RandomSpecs(rng, 1 + trial % 12);
    // Equal-size variables make the tie-break matter.
    specs.push_back(Var("tie_b", {100, 10}));
    specs.push_back(Var("tie_a", {100, 10}));
    specs.push_back(Var("tie_c", {10, 100}));
    for (int servers = 1; servers <= 5; ++servers) {
      PlacementOptions options;
      options.split_threshold_bytes = 64 * 1024;
      Placement reference = MustCompute(specs, servers, options);
      for (int shuffle = 0; shuffle < 3; ++shuffle) {
        std::vector<VariableSpec> shuffled = specs;
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        Placement again = MustCompute(shuffled, servers, options);
        ExpectSamePlacement(reference, again);
      }
      std::vector<VariableSpec> reversed(specs.rbegin(), specs.rend());
      ExpectSamePlacement(reference, MustCompute(reversed, servers, options));
    }
  }
}

TEST(Placement, OwnsEveryRowOfEveryVariableExactlyOnce) {
  std::mt19937 rng(987654321);
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<VariableSpec> specs = RandomSpecs(rng, 1 + trial % 20);
    for (int servers = 1; servers <= 5; ++servers) {
      for (uint64_t threshold : {uint64_t{0}, uint64_t{16} << 10, uint64_t{2} << 20}) {
        SCOPED_TRACE("trial " + std::to_string(trial) + " servers " + std::to_string(servers) +
                     " threshold " + std::to_string(threshold));
        PlacementOptions options;
        options.split_threshold_bytes = threshold;
        Placement p = MustCompute(specs, servers, options);
        ExpectCompleteAndDisjoint(p, specs, servers);
        if (HasFatalFailure() || HasFailure()) return;  // one trace is enough
      }
    }
  }
}

TEST(Placement, SplitsALargeVariableAcrossAllServersAndKeepsSmallOnesWhole) {
  PlacementOptions options;  // 2 MiB threshold
  // 1000 x 1000 float32 = 4 MB > 2 MiB.
  std::vector<VariableSpec> specs = {Var("embedding", {1000, 1000}), Var("bias", {1000}), Var("w", {30, 20})};
  for (int servers = 2; servers <= 5; ++servers) {
    SCOPED_TRACE(servers);
    Placement p = MustCompute(specs, servers, options);
    std::vector<ShardSlice> big = Slices(p, "embedding");
    ASSERT_EQ(big.size(), static_cast<size_t>(servers));
    std::set<int> used;
    for (const ShardSlice& s : big) {
      used.insert(s.server);
      EXPECT_GE(s.rows(), 1000 / servers);
      EXPECT_LE(s.rows(), 1000 / servers + 1);
    }
    EXPECT_EQ(used.size(), static_cast<size_t>(servers));
    for (const char* small : {"bias", "w"}) {
      std::vector<ShardSlice> whole = Slices(p, small);
      ASSERT_EQ(whole.size(), 1u) << small;
      EXPECT_EQ(whole[0].row_begin, 0);
      EXPECT_EQ(whole[0].row_end, p.SpecOf(small)->rows());
    }
    ExpectCompleteAndDisjoint(p, specs, servers);
  }
}

TEST(Placement, ThresholdIsStrictlyGreaterThan) {
  PlacementOptions options;
  options.split_threshold_bytes = 400;
  // Exactly 400 bytes: not above the threshold, stays whole.
  Placement at = MustCompute({Var("w", {10, 10})}, 3, options);
  EXPECT_EQ(Slices(at, "w").size(), 1u);
  // 440 bytes: split.
  Placement above = MustCompute({Var("w", {11, 10})}, 3, options);
  EXPECT_EQ(Slices(above, "w").size(), 3u);
}

TEST(Placement, ALargeVariableWithFewerRowsThanServersStaysWhole) {
  PlacementOptions options;
  options.split_threshold_bytes = 1024;
  // 3 rows of 100 KB each, 4 servers: cannot give every server a row.
  Placement p = MustCompute({Var("wide", {3, 25600})}, 4, options);
  std::vector<ShardSlice> slices = Slices(p, "wide");
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(slices[0].rows(), 3);
  // With exactly as many rows as servers it is split one row each.
  Placement q = MustCompute({Var("wide", {4, 25600})}, 4, options);
  std::vector<ShardSlice> split = Slices(q, "wide");
  ASSERT_EQ(split.size(), 4u);
  for (const ShardSlice& s : split) EXPECT_EQ(s.rows(), 1);
}

TEST(Placement, SingleServerHoldsEverythingWhole) {
  PlacementOptions options;
  options.split_threshold_bytes = 0;
  std::vector<VariableSpec> specs = {Var("a", {1000, 1000}), Var("b", {5})};
  Placement p = MustCompute(specs, 1, options);
  for (const char* name : {"a", "b"}) {
    std::vector<ShardSlice> s = Slices(p, name);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].server, 0);
  }
  ExpectCompleteAndDisjoint(p, specs, 1);
}

TEST(Placement, BalancesManyEqualSmallVariables) {
  for (int servers = 1; servers <= 5; ++servers) {
    for (int count : {1, 7, 50, 101}) {
      std::vector<VariableSpec> specs;
      for (int i = 0; i < count; ++i) specs.push_back(Var("layer" + std::to_string(i) + "/w", {64, 32}));
      const uint64_t one = specs[0].byte_size();
      Placement p = MustCompute(specs, servers);
      std::vector<uint64_t> bytes = p.BytesPerServer();
      ASSERT_EQ(bytes.size(), static_cast<size_t>(servers));
      uint64_t lo = *std::min_element(bytes.begin(), bytes.end());
      uint64_t hi = *std::max_element(bytes.begin(), bytes.end());
      EXPECT_LE(hi - lo, one) << servers << " servers, " << count << " variables";
      ExpectCompleteAndDisjoint(p, specs, servers);
    }
  }
}

TEST(Placement, PlacesLargestFirstOnTheLeastLoadedServerWithTiesToTheLowestIndex) {
  // 400, 300, 200, 100 bytes on 2 servers: 400→0, 300→1, 200→1 (300<400), 100→0 (400<500).
  std::vector<VariableSpec> specs = {Var("d", {25}), Var("b", {75}), Var("a", {100}), Var("c", {50})};
  Placement p = MustCompute(specs, 2);
  EXPECT_EQ(Slices(p, "a")[0].server, 0);
  EXPECT_EQ(Slices(p, "b")[0].server, 1);
  EXPECT_EQ(Slices(p, "c")[0].server, 1);
  EXPECT_EQ(Slices(p, "d")[0].server, 0);
  EXPECT_EQ(p.BytesPerServer(), (std::vector<uint64_t>{500, 500}));
  // Equal sizes go in name order: "x" before "y", so "x" gets server 0.
  Placement q = MustCompute({Var("y", {10}), Var("x", {10})}, 2);
  EXPECT_EQ(Slices(q, "x")[0].server, 0);
  EXPECT_EQ(Slices(q, "y")[0].server, 1);
}

TEST(Placement, RejectsDuplicateNames) {
  StatusOr<Placement> p = Placement::Compute({Var("w", {4}), Var("b", {2}), Var("w", {8})}, 2);
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
}

TEST(Placement, RejectsFewerThanOneServer) {
  for (int servers : {0, -1, -100}) {
    StatusOr<Placement> p = Placement::Compute({Var("w", {4})}, servers);
    EXPECT_FALSE(p.ok()) << servers;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(Placement, RejectsInvalidSpecs) {
  EXPECT_EQ(Placement::Compute({Var("", {4})}, 2).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Placement::Compute({Var("w", {-4})}, 2).status().code(), StatusCode::kInvalidArgument);
  VariableSpec bad_dtype = Var("w", {4});
  bad_dtype.dtype = static_cast<DType>(0);
  EXPECT_EQ(Placement::Compute({bad_dtype}, 2).status().code(), StatusCode::kInvalidArgument);
}

TEST(Placement, SlicesOfAnUnknownNameIsNotFound) {
  Placement p = MustCompute({Var("w", {4})}, 2);
  StatusOr<std::vector<ShardSlice>> s = p.SlicesOf("nope");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(p.SpecOf("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(p.SlicesOf("").status().code(), StatusCode::kNotFound);
}

TEST(Placement, ScalarVariableIsPlacedWhole) {
  PlacementOptions options;
  options.split_threshold_bytes = 0;  // everything non-empty is "large"
  for (int servers = 1; servers <= 5; ++servers) {
    VariableSpec step = Var("global_step", {}, DType::kInt64);
    Placement p = MustCompute({step, Var("w", {100, 4})}, servers, options);
    std::vector<ShardSlice> s = Slices(p, "global_step");
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].row_begin, 0);
    EXPECT_EQ(s[0].row_end, 1);
    uint64_t total = 0;
    for (uint64_t b : p.BytesPerServer()) total += b;
    EXPECT_EQ(total, 8u + 1600u);
  }
}

TEST(Placement, EmptyVariableIsPlacedWholeWithZeroRows) {
  PlacementOptions options;
  options.split_threshold_bytes = 0;
  Placement p = MustCompute({Var("empty", {0, 16})}, 3, options);
  std::vector<ShardSlice> s = Slices(p, "empty");
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].rows(), 0);
}

TEST(Placement, NoVariablesGivesAnEmptyPlacement) {
  Placement p = MustCompute({}, 3);
  EXPECT_EQ(p.num_servers(), 3);
  EXPECT_TRUE(p.VariableNames().empty());
  EXPECT_EQ(p.BytesPerServer(), (std::vector<uint64_t>{0, 0, 0}));
}

}  // namespace
}  // namespace cairn
