// libFuzzer target: the strict msgpack document parser and its accessors
// (core/codec.hpp). parse() must refuse bad input with Error{bad_message} only;
// on a parsed document every accessor is tried on every value (each may refuse
// with Error), walking arrays and maps to the parser's depth limit. With tight
// limits msgpack-c's own unpacker is the oracle the parser must agree with.
#include "core/codec.hpp"
#include "fuzz_util.hpp"

#include <optional>
#include <string_view>

using namespace apiary;

namespace {

void try_scalars(const codec::Reader& value) {
  fuzz::expect_only<Error>([&] { (void)value.boolean("b"); });
  fuzz::expect_only<Error>([&] { (void)value.uint("u", 1000); });
  fuzz::expect_only<Error>([&] { (void)value.sint("s", -1000, 1000); });
  fuzz::expect_only<Error>([&] { (void)value.integer<std::uint8_t>("u8"); });
  fuzz::expect_only<Error>([&] { (void)value.integer<std::int16_t>("i16"); });
  fuzz::expect_only<Error>([&] { (void)value.f64("f"); });
  fuzz::expect_only<Error>([&] { (void)value.f64("f", true); });
  fuzz::expect_only<Error>([&] { (void)value.str("str", 64, 1); });
  fuzz::expect_only<Error>([&] { (void)value.bin("bin", 64, 1); });
  fuzz::expect_only<Error>([&] { (void)value.fixed_bin("fixed", 20); });
}

// Values whose accessors are tried per input: every value runs the same
// accessor code, and ~12 refusals (exceptions) per value made a 4 KB document
// of 1,000 values cost ~1 ms, and 256 values still ~0.4 ms under ASan — 10 M
// inputs out of reach. Past the budget the
// walk stops; the parser itself has already seen the whole input.
constexpr int kValuesPerInput = 32;

void walk(const codec::Reader& value, int depth, int& budget) {
  fuzz::require(depth <= 17, "depth is bounded by the parser");
  if (--budget < 0) return;
  try_scalars(value);
  fuzz::expect_only<Error>([&] {
    codec::ArrayReader items = value.array("arr", 0, 1u << 20);
    while (!items.done()) walk(items.next(), depth + 1, budget);
    fuzz::expect_only<Error>([&] { (void)items.next(); });  // past the end: an error
  });
  fuzz::expect_only<Error>([&] {
    codec::MapReader entries = value.map("map", 1u << 16);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      walk(entries.key(i), depth + 1, budget);
      walk(entries.value(i), depth + 1, budget);
    }
    (void)entries.find("key");
    fuzz::expect_only<Error>([&] { (void)entries.at("absent-key"); });
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::expect_only<Error>([&] {
    codec::Document doc = codec::parse(ByteSpan(data, size));
    int budget = kValuesPerInput;
    walk(doc.root(), 0, budget);
  });
  // Tight limits take other refusal paths, and make msgpack-c's own unpacker
  // a safe oracle (it can allocate at most 2 levels of 4 elements from
  // headers): both must accept the same inputs and build the same values.
  const codec::Limits small{
      .max_depth = 2, .max_array = 4, .max_map = 4, .max_str = 8, .max_bin = 8};
  std::optional<codec::Document> ours;
  fuzz::expect_only<Error>([&] {
    ours.emplace(codec::parse(ByteSpan(data, size), small));
    int budget = kValuesPerInput;
    walk(ours->root(), 0, budget);
  });
  std::optional<msgpack::object_handle> oracle;
  try {
    std::size_t offset = 0;
    auto handle = msgpack::unpack(reinterpret_cast<const char*>(data), size, offset, nullptr,
                                  nullptr, msgpack::unpack_limit(4, 4, 8, 8, 0, 2));
    if (offset == size) oracle = std::move(handle);
  } catch (const std::exception&) {
  }
  fuzz::require(ours.has_value() == oracle.has_value(), "msgpack-c accepts the same inputs");
  if (ours) {
    // Compared re-encoded: object== says NaN != NaN.
    msgpack::sbuffer mine;
    msgpack::sbuffer theirs;
    msgpack::pack(mine, ours->root().object());
    msgpack::pack(theirs, oracle->get());
    fuzz::require(std::string_view(mine.data(), mine.size()) ==
                      std::string_view(theirs.data(), theirs.size()),
                  "msgpack-c builds the same value");
  }
  return 0;
}
