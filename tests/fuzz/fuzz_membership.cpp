// libFuzzer target: membership tokens (optimizer/membership.hpp) as the
// handshake's admit check receives them from a stranger, and token files as
// load_token reads them from disk. Only Error may come out; a token that
// decodes encodes back to exactly the input bytes, and only a token that
// decodes, names the run and carries the run key's signature is admitted.
#include "fuzz_util.hpp"
#include "optimizer/membership.hpp"

using namespace apiary;
using namespace apiary::optimizer;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The seed corpus (make_corpus_files.cpp) issues tokens with these identities.
  static const Identity run_key = fuzz::seeded_identity(9);
  static const Identity member = fuzz::seeded_identity(11);
  const ByteSpan input(data, size);
  MembershipToken token;
  const bool decoded = fuzz::expect_only<Error>([&] { token = MembershipToken::decode(input); });
  if (decoded) {
    fuzz::require(token.encode() == Bytes(input.begin(), input.end()), "token round-trips");
  }
  static const auto admit = make_admit_check(run_key.public_key(), "fuzz-run",
                                             [] { return std::uint64_t{1'700'000'000}; });
  if (admit(member.public_key(), input)) {
    fuzz::require(decoded && token.run == "fuzz-run" && token.signed_by(run_key.public_key()),
                  "only a genuine token is admitted");
  }

  // The same bytes as a token file (text: hex lines).
  static const auto file = fuzz::scratch_file("membership");
  fuzz::write_file(file, input);
  fuzz::expect_only<Error>([&] { (void)load_token(file); });
  return 0;
}
