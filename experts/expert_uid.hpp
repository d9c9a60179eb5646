#pragma once
// Expert names on a grid: "<name>.<i>.<j>…" (e.g. "ffn.3.7"). The name is
// [A-Za-z_][A-Za-z0-9_-]* and each coordinate a non-negative decimal index
// without leading zeros. Prefixes end with a dot: "ffn." (the grid), "ffn.3."
// (row 3). Servers declare one DHT entry per prefix level; clients walk the
// grid prefix by prefix (experts/beam_search.hpp).
//
// Patterns for launching many experts: "ffn.[0:4].[0:8]" is every uid with the
// first coordinate in [0, 4) and the second in [0, 8); plain indices mix with
// ranges ("ffn.3.[0:8]").
//
// Errors (experts/ convention, as core/): throws apiary::Error — invalid_argument
// for a malformed uid or pattern, resource_exhausted for a pattern naming more
// than `max_count` experts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace apiary::experts {

inline constexpr std::size_t kMaxUidLength = 256;
inline constexpr std::size_t kMaxGridDims = 8;
inline constexpr std::uint32_t kMaxGridIndex = 1u << 20;

struct ExpertUid {
  std::string name;                   // "ffn"
  std::vector<std::uint32_t> coords;  // {3, 7}

  std::string to_string() const;
  // "name." for level 0, "name.3." for level 1, …; level <= coords.size().
  std::string prefix(std::size_t level) const;
  static ExpertUid parse(std::string_view text);
  bool operator==(const ExpertUid&) const = default;
};

bool is_valid_uid(std::string_view text) noexcept;
// A prefix is "name." followed by zero or more "index." groups.
bool is_valid_prefix(std::string_view text) noexcept;
// Number of coordinates in a prefix ("ffn." → 0, "ffn.3." → 1).
std::size_t prefix_level(std::string_view prefix);

std::vector<std::string> expand_pattern(std::string_view pattern, std::size_t max_count = 1u << 16);

}  // namespace apiary::experts
