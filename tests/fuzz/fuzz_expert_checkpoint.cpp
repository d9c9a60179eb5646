// libFuzzer target: expert checkpoint files (experts/checkpoint.hpp) as
// load_checkpoint hands their bytes to decode_expert_state. A file ends in a
// BLAKE2b-256 of its body; when the input's first byte is odd the target
// appends the correct hash, so the fuzzer reaches the body decoder (uid,
// float arrays sized from the file). Only Error may come out; a state that
// decodes encodes back to exactly the file's bytes.
#include "experts/checkpoint.hpp"
#include "fuzz_util.hpp"

using namespace apiary;
using namespace apiary::experts;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Bytes file_bytes = fuzz::file_with_optional_hash(data, size);
  const std::string uid = "ffn.0.1";  // the uid make_corpus.cpp writes
  ExpertState state;
  if (!fuzz::expect_only<Error>([&] { state = decode_expert_state(uid, file_bytes); })) return 0;
  fuzz::require(encode_expert_state(uid, state) == file_bytes, "expert state round-trips");
  return 0;
}
