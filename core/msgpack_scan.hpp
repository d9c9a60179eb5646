#pragma once
// A cheap walk over one msgpack value's encoding that runs before msgpack-c
// unpacks it. msgpack-c allocates an array's or map's object table from the
// count in its header, before any element arrives: a 5-byte header claiming a
// million elements costs 16 MiB, nested headers multiply it, and 16 MiB of
// one-byte elements decode to ~400 MiB of objects. The scan refuses, without
// allocating, a container that claims more elements than bytes remain (every
// element takes at least one byte) and a value with more objects in total
// than the caller's purpose needs, so what a message can make the parser
// allocate is bounded by its length and by that budget.
//
// Errors: throws apiary::Error{Errc::bad_message, "message: …"} (codec's
// convention); a well-formed value within the bounds returns its object count.
#include "core/bytes.hpp"

#include <cstddef>

namespace apiary::codec {

// The deepest nesting any scan walks (ScanLimits::max_depth is capped at it).
inline constexpr std::size_t kMaxScanDepth = 64;

struct ScanLimits {
  std::size_t max_depth = 16;
  std::size_t max_objects = 1u << 16;  // every value, key and element, the root included
};

// Walks the first msgpack value in `bytes` (trailing bytes are the caller's
// concern) and returns how many objects it holds.
std::size_t scan_objects(ByteSpan bytes, const ScanLimits& limits);

}  // namespace apiary::codec
