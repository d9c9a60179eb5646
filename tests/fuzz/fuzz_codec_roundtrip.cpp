// libFuzzer round-trip target for core/codec.hpp: the input is read as a
// recipe for a msgpack value (nil, booleans, integers, floats, strings,
// binaries, arrays and string-keyed maps, nested to depth 8), written with
// codec::Writer, parsed back with codec::parse and compared with the recipe
// through the accessors: decode(encode(x)) == x for every x.
#include "core/codec.hpp"
#include "fuzz_util.hpp"

#include <cstring>
#include <memory>
#include <vector>

using namespace apiary;

namespace {

struct Value {
  enum Kind { nil, boolean, uint, sint, f64, str, bin, array, map } kind = nil;
  std::uint64_t bits = 0;         // boolean, uint, sint, f64 (as bits)
  Bytes bytes;                    // str, bin
  std::vector<Value> items;       // array, map (values)
  std::vector<std::string> keys;  // map
};

class Recipe {
 public:
  explicit Recipe(ByteSpan input) : input_(input) {}

  Value value(int depth) {
    Value v;
    v.kind = static_cast<Value::Kind>(byte() % (depth < 8 ? 9 : 7));
    switch (v.kind) {
      case Value::boolean:
        v.bits = byte() & 1;
        break;
      case Value::uint:
      case Value::sint:
        v.bits = word();
        break;
      case Value::f64: {
        v.bits = word();
        double d;
        std::memcpy(&d, &v.bits, sizeof d);
        if (d != d) v.bits = 0;  // NaN never compares equal; the codec's f64 refuses it anyway
        break;
      }
      case Value::str:
      case Value::bin:
        v.bytes = take(byte());
        break;
      case Value::array:
      case Value::map: {
        const std::size_t n = byte() % 8;
        for (std::size_t i = 0; i < n && !input_.empty(); ++i) {
          Bytes key = take(byte() % 4);
          key.push_back(static_cast<std::uint8_t>('a' + i));  // distinct keys
          v.keys.emplace_back(key.begin(), key.end());
          v.items.push_back(value(depth + 1));
        }
        break;
      }
      default:
        break;
    }
    return v;
  }

 private:
  std::uint8_t byte() {
    if (input_.empty()) return 0;
    const std::uint8_t b = input_[0];
    input_ = input_.subspan(1);
    return b;
  }
  std::uint64_t word() {
    std::uint64_t w = 0;
    for (int i = 0; i < 8; ++i) w = (w << 8) | byte();
    return w;
  }
  Bytes take(std::size_t n) {
    n = std::min(n, input_.size());
    Bytes out(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(n));
    input_ = input_.subspan(n);
    return out;
  }
  ByteSpan input_;
};

void write(codec::Writer& w, const Value& v) {
  double d;
  std::memcpy(&d, &v.bits, sizeof d);
  switch (v.kind) {
    case Value::nil:
      w.nil();
      break;
    case Value::boolean:
      w.boolean(v.bits != 0);
      break;
    case Value::uint:
      w.uint(v.bits);
      break;
    case Value::sint:
      w.sint(static_cast<std::int64_t>(v.bits));
      break;
    case Value::f64:
      w.f64(d);
      break;
    case Value::str:
      w.str({reinterpret_cast<const char*>(v.bytes.data()), v.bytes.size()});
      break;
    case Value::bin:
      w.bin(v.bytes);
      break;
    case Value::array:
      w.array(static_cast<std::uint32_t>(v.items.size()));
      for (const auto& item : v.items) write(w, item);
      break;
    case Value::map:
      w.map(static_cast<std::uint32_t>(v.items.size()));
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        w.str(v.keys[i]);
        write(w, v.items[i]);
      }
      break;
  }
}

void check(const codec::Reader& r, const Value& v) {
  double d;
  std::memcpy(&d, &v.bits, sizeof d);
  switch (v.kind) {
    case Value::nil:
      fuzz::require(r.is_nil(), "nil");
      break;
    case Value::boolean:
      fuzz::require(r.boolean("b") == (v.bits != 0), "boolean");
      break;
    case Value::uint:
      fuzz::require(r.uint("u") == v.bits, "uint");
      break;
    case Value::sint:
      fuzz::require(r.sint("s") == static_cast<std::int64_t>(v.bits), "sint");
      break;
    case Value::f64: {
      const double got = r.f64("f", true);
      fuzz::require(std::memcmp(&got, &d, sizeof d) == 0 || (got == 0 && d == 0), "f64");
      break;
    }
    case Value::str: {
      const std::string_view s = r.str("str", 255);
      fuzz::require(s.size() == v.bytes.size() &&
                        (s.empty() || std::memcmp(s.data(), v.bytes.data(), s.size()) == 0),
                    "str");
      break;
    }
    case Value::bin: {
      const ByteSpan b = r.bin("bin", 255);
      fuzz::require(std::equal(b.begin(), b.end(), v.bytes.begin(), v.bytes.end()), "bin");
      break;
    }
    case Value::array: {
      codec::ArrayReader items = r.array("arr", v.items.size(), v.items.size());
      for (const auto& item : v.items) check(items.next(), item);
      fuzz::require(items.done(), "array size");
      break;
    }
    case Value::map: {
      codec::MapReader entries = r.map("map", v.items.size());
      fuzz::require(entries.size() == v.items.size(), "map size");
      for (std::size_t i = 0; i < v.items.size(); ++i) check(entries.at(v.keys[i]), v.items[i]);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Value value = Recipe(ByteSpan(data, size)).value(0);
  codec::Writer writer;
  write(writer, value);
  const Bytes wire = writer.take();
  const codec::Document doc = codec::parse(wire);  // must not throw: the writer's own output
  check(doc.root(), value);
  return 0;
}
