// libFuzzer target: revocation lists (optimizer/revocation.hpp) as a peer of a
// token run fetches them from the DHT — a stranger's bytes. Only Error may
// come out of decode; a list that decodes encodes to one that decodes to the
// same fields; only a list for the run, signed by the run key, is taken.
#include "fuzz_util.hpp"
#include "optimizer/revocation.hpp"

using namespace apiary;
using namespace apiary::optimizer;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The seed corpus (make_corpus_files.cpp) signs lists with this key.
  static const Identity run_key = fuzz::seeded_identity(9);
  RevocationList list;
  const bool decoded =
      fuzz::expect_only<Error>([&] { list = RevocationList::decode(ByteSpan(data, size)); });
  if (!decoded) return 0;
  const RevocationList again = RevocationList::decode(list.encode());
  fuzz::require(again.run == list.run && again.issued_at == list.issued_at &&
                    again.peers == list.peers && again.signature == list.signature,
                "decode(encode(list)) == list");
  Revocations revocations(run_key.public_key(), "fuzz-run");
  const auto update = revocations.update(list);
  if (update == Revocations::Update::accepted) {
    fuzz::require(list.run == "fuzz-run" && list.signed_by(run_key.public_key()),
                  "only the run key's list for this run is taken");
    for (const auto& peer : list.peers)
      fuzz::require(revocations.revoked(peer), "listed = revoked");
  } else {
    fuzz::require(revocations.size() == 0, "a refused list revokes nobody");
  }
  return 0;
}
