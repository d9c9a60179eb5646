#include "experts/expert_uid.hpp"

#include "core/error.hpp"

#include <charconv>

namespace apiary::experts {
namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

bool valid_name(std::string_view name) {
  if (name.empty() || !is_name_start(name.front())) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

// A decimal index without sign or leading zeros, below kMaxGridIndex.
bool parse_index(std::string_view text, std::uint32_t& out) {
  if (text.empty() || text.size() > 7) return false;
  if (text.size() > 1 && text.front() == '0') return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && ptr == text.data() + text.size() && out < kMaxGridIndex;
}

std::vector<std::string_view> split_dots(std::string_view text) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    auto dot = text.find('.', start);
    if (dot == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, dot - start));
    start = dot + 1;
  }
}

[[noreturn]] void invalid(std::string_view what, std::string_view text) {
  throw Error(Errc::invalid_argument, std::string(what) + " '" + std::string(text.substr(0, 64)) +
                                          "': expected <name>.<index>[.<index>…], e.g. ffn.3.7");
}

}  // namespace

std::string ExpertUid::to_string() const {
  std::string out = name;
  for (auto c : coords) out += "." + std::to_string(c);
  return out;
}

std::string ExpertUid::prefix(std::size_t level) const {
  if (level > coords.size()) throw Error(Errc::invalid_argument, "prefix level beyond the uid");
  std::string out = name + ".";
  for (std::size_t i = 0; i < level; ++i) out += std::to_string(coords[i]) + ".";
  return out;
}

ExpertUid ExpertUid::parse(std::string_view text) {
  if (text.size() > kMaxUidLength) invalid("uid too long", text);
  auto parts = split_dots(text);
  if (parts.size() < 2 || parts.size() > kMaxGridDims + 1) invalid("bad uid", text);
  if (!valid_name(parts[0])) invalid("bad uid name", text);
  ExpertUid uid;
  uid.name = std::string(parts[0]);
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::uint32_t index = 0;
    if (!parse_index(parts[i], index)) invalid("bad uid index", text);
    uid.coords.push_back(index);
  }
  return uid;
}

bool is_valid_uid(std::string_view text) noexcept {
  try {
    ExpertUid::parse(text);
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool is_valid_prefix(std::string_view text) noexcept {
  if (text.size() > kMaxUidLength || text.size() < 2 || text.back() != '.') return false;
  auto parts = split_dots(text.substr(0, text.size() - 1));
  if (parts.size() > kMaxGridDims + 1 || !valid_name(parts[0])) return false;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    std::uint32_t index = 0;
    if (!parse_index(parts[i], index)) return false;
  }
  return true;
}

std::size_t prefix_level(std::string_view prefix) {
  if (!is_valid_prefix(prefix)) {
    throw Error(Errc::invalid_argument,
                "bad expert prefix '" + std::string(prefix.substr(0, 64)) + "'");
  }
  std::size_t dots = 0;
  for (char c : prefix) dots += c == '.';
  return dots - 1;
}

std::vector<std::string> expand_pattern(std::string_view pattern, std::size_t max_count) {
  if (pattern.size() > kMaxUidLength) invalid("pattern too long", pattern);
  auto parts = split_dots(pattern);
  if (parts.size() < 2 || parts.size() > kMaxGridDims + 1 || !valid_name(parts[0])) {
    invalid("bad expert pattern", pattern);
  }
  // Per dimension the half-open range [lo, hi).
  std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges;
  std::size_t count = 1;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    auto part = parts[i];
    std::uint32_t lo = 0, hi = 0;
    if (part.size() >= 5 && part.front() == '[' && part.back() == ']') {
      auto inner = part.substr(1, part.size() - 2);
      auto colon = inner.find(':');
      if (colon == std::string_view::npos || !parse_index(inner.substr(0, colon), lo) ||
          !parse_index(inner.substr(colon + 1), hi) || hi <= lo) {
        invalid("bad range in expert pattern (want [lo:hi] with lo < hi)", pattern);
      }
    } else {
      if (!parse_index(part, lo)) invalid("bad index in expert pattern", pattern);
      hi = lo + 1;
    }
    ranges.emplace_back(lo, hi);
    count *= hi - lo;
    if (count > max_count) {
      throw Error(Errc::resource_exhausted, "expert pattern '" + std::string(pattern) +
                                                "' names more than " + std::to_string(max_count) +
                                                " experts");
    }
  }
  std::vector<std::string> uids;
  uids.reserve(count);
  ExpertUid uid{std::string(parts[0]), {}};
  for (auto& r : ranges) uid.coords.push_back(r.first);
  while (true) {
    uids.push_back(uid.to_string());
    // Odometer increment, last dimension fastest.
    std::size_t d = ranges.size();
    while (d > 0) {
      --d;
      if (++uid.coords[d] < ranges[d].second) break;
      uid.coords[d] = ranges[d].first;
      if (d == 0) return uids;
    }
  }
}

}  // namespace apiary::experts
