#pragma once
// Test shorthand: the bytes of a string literal.
#include "core/bytes.hpp"

#include <string_view>

namespace apiary {
inline Bytes to_bytes(std::string_view s) {
  return Bytes(s.begin(), s.end());
}
}  // namespace apiary
