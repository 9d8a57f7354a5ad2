#include "common/placement.h"

#include <algorithm>
#include <set>

namespace cairn {

StatusOr<Placement> Placement::Compute(const std::vector<VariableSpec>& specs, int num_servers,
                                       const PlacementOptions& options) {
  if (num_servers < 1) return InvalidArgument("placement needs at least one server, got " + std::to_string(num_servers));
  Placement p;
  p.num_servers_ = num_servers;
  std::vector<const VariableSpec*> sorted;
  std::set<std::string> names;
  for (const VariableSpec& spec : specs) {
    RETURN_IF_ERROR(ValidateSpec(spec));
    if (!names.insert(spec.name).second) return InvalidArgument("variable '" + spec.name + "' is declared twice");
    sorted.push_back(&spec);
  }
  // Largest first, then by name: independent of the caller's order.
  std::sort(sorted.begin(), sorted.end(), [](const VariableSpec* a, const VariableSpec* b) {
    if (a->byte_size() != b->byte_size()) return a->byte_size() > b->byte_size();
    return a->name < b->name;
  });

  std::vector<uint64_t> load(num_servers, 0);
  auto split = [&](const VariableSpec& s) {
    return num_servers > 1 && s.byte_size() > options.split_threshold_bytes && s.rows() >= num_servers &&
           !s.shape.empty();
  };
  // Split variables first: they load every server alike.
  for (const VariableSpec* s : sorted) {
    if (!split(*s)) continue;
    Entry e{*s, {}};
    const int64_t rows = s->rows();
    for (int i = 0; i < num_servers; ++i) {
      ShardSlice slice{i, rows * i / num_servers, rows * (i + 1) / num_servers};
      load[i] += slice.rows() * s->row_bytes();
      e.slices.push_back(slice);
    }
    p.entries_.emplace(s->name, std::move(e));
  }
  for (const VariableSpec* s : sorted) {
    if (split(*s)) continue;
    int best = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[best] += s->byte_size();
    p.entries_.emplace(s->name, Entry{*s, {ShardSlice{best, 0, s->rows()}}});
  }
  return p;
}

StatusOr<std::vector<ShardSlice>> Placement::SlicesOf(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return NotFound("variable '" + name + "' is not in the placement");
  return it->second.slices;
}

StatusOr<VariableSpec> Placement::SpecOf(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return NotFound("variable '" + name + "' is not in the placement");
  return it->second.spec;
}

std::vector<std::pair<std::string, ShardSlice>> Placement::SlicesOnServer(int s) const {
  std::vector<std::pair<std::string, ShardSlice>> out;
  for (const auto& [name, e] : entries_) {
    for (const ShardSlice& slice : e.slices) {
      if (slice.server == s) out.emplace_back(name, slice);
    }
  }
  return out;
}

std::vector<uint64_t> Placement::BytesPerServer() const {
  std::vector<uint64_t> bytes(num_servers_, 0);
  for (const auto& [name, e] : entries_) {
    for (const ShardSlice& slice : e.slices) bytes[slice.server] += slice.rows() * e.spec.row_bytes();
  }
  return bytes;
}

std::vector<std::string> Placement::VariableNames() const {
  std::vector<std::string> names;
  for (const auto& [name, e] : entries_) names.push_back(name);
  return names;
}

}  // namespace cairn
