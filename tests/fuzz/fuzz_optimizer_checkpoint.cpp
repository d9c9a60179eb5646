// libFuzzer target: optimizer checkpoint files (optimizer/checkpoint.hpp) as
// read_checkpoint reads them from disk. A file ends in a BLAKE2b-256 of its
// body; when the input's first byte is odd the target appends the correct
// hash to the rest, so the fuzzer reaches the body decoder (tensor counts,
// names, shapes: allocations sized from the file). Only Error may come out; a
// checkpoint that reads writes back to a file that reads the same.
#include "fuzz_util.hpp"
#include "optimizer/checkpoint.hpp"

#include <algorithm>
#include <span>

using namespace apiary;
using namespace apiary::optimizer;

namespace {

bool same(const Checkpoint& a, const Checkpoint& b) {
  if (a.epoch != b.epoch || a.metadata_json != b.metadata_json) return false;
  if (a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const NamedTensor& x = a.tensors[i];
    const NamedTensor& y = b.tensors[i];
    // Bitwise (NaN payloads too); std::ranges::equal on floats would call NaN unequal.
    if (x.name != y.name || x.shape != y.shape || x.data.size() != y.data.size()) return false;
    const auto bits = [](const NamedTensor& t) { return std::as_bytes(std::span(t.data)); };
    if (!std::ranges::equal(bits(x), bits(y))) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Bytes file_bytes = fuzz::file_with_optional_hash(data, size);
  static const auto file = fuzz::scratch_file("optimizer_checkpoint");
  fuzz::write_file(file, file_bytes);
  Checkpoint checkpoint;
  if (!fuzz::expect_only<Error>([&] { checkpoint = read_checkpoint(file); })) return 0;
  static const auto copy = fuzz::scratch_file("optimizer_checkpoint_copy");
  write_checkpoint(copy, checkpoint);
  fuzz::require(same(read_checkpoint(copy), checkpoint), "checkpoint round-trips");
  return 0;
}
