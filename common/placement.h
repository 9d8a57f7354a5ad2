// Placement: which server holds which rows of which variable.
//
// A pure function of (variable specs, server count, options): every process
// computes the same placement, whatever order it lists the specs in, and a
// restore onto another server count simply computes a new one.
//   - A variable above `split_threshold_bytes` (with at least as many rows as
//     there are servers) is split by rows into one contiguous block per server.
//   - Every other variable goes whole to the server with the fewest bytes so
//     far, largest variables first, ties to the lowest server index.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/variable_spec.h"

namespace cairn {

struct PlacementOptions {
  // Variables larger than this are split by rows across all servers.
  uint64_t split_threshold_bytes = uint64_t{2} << 20;  // 2 MiB
};

// Rows [row_begin, row_end) of a variable, held by `server`.
struct ShardSlice {
  int server = 0;
  int64_t row_begin = 0;
  int64_t row_end = 0;
  int64_t rows() const { return row_end - row_begin; }
  bool operator==(const ShardSlice&) const = default;
};

class Placement {
 public:
  // InvalidArgument for num_servers < 1, duplicate names or an invalid spec.
  static StatusOr<Placement> Compute(const std::vector<VariableSpec>& specs, int num_servers,
                                     const PlacementOptions& options = {});

  int num_servers() const { return num_servers_; }
  // The slices of `name`, ordered by row_begin; NotFound for an unknown name.
  StatusOr<std::vector<ShardSlice>> SlicesOf(const std::string& name) const;
  StatusOr<VariableSpec> SpecOf(const std::string& name) const;
  // The slices held by server `s`, with the variable names.
  std::vector<std::pair<std::string, ShardSlice>> SlicesOnServer(int s) const;
  // Bytes assigned to each server.
  std::vector<uint64_t> BytesPerServer() const;
  // Every variable name, sorted.
  std::vector<std::string> VariableNames() const;

 private:
  struct Entry {
    VariableSpec spec;
    std::vector<ShardSlice> slices;
  };
  int num_servers_ = 0;
  std::map<std::string, Entry> entries_;
};

}  // namespace cairn
