#pragma once
// The one msgpack decoder: a single pass over one value's encoding that builds
// msgpack-c's object tree (msgpack::object in a msgpack::zone) itself.
// msgpack-c's unpacker sizes an array's or map's table from the count in its
// header before any element arrives: a 5-byte header claiming a million
// elements cost 16 MiB, nested headers multiplied it. Here a container that
// claims more elements than bytes remain (every element takes at least one
// byte), one past the caller's size limits, or one that takes the value past
// its object budget is refused before its table is allocated, so what a
// message can make us allocate is bounded by its length and by that budget.
// (Wave 2 first ran a separate pre-scan before msgpack::unpack; one walk costs
// less than the two.)
//
// Strings and binaries are referenced in the input, never copied; ext types
// are refused. The depth rule is msgpack-c's: a container at nesting level L
// (the root is level 1) is refused when L > max_depth.
//
// Errors: throws apiary::Error{Errc::bad_message, "message: …"} (codec's
// convention).
#include "core/bytes.hpp"

#include <msgpack.hpp>

#include <cstddef>

namespace apiary::codec {

struct Limits;  // core/codec.hpp

// The deepest nesting any parse walks (Limits::max_depth is capped at it).
inline constexpr std::size_t kMaxParseDepth = 64;

// Parses exactly one msgpack value filling all of `bytes` into `zone`.
// Views in the result point into `bytes`.
msgpack::object parse_object(ByteSpan bytes, const Limits& limits, msgpack::zone& zone);

}  // namespace apiary::codec
