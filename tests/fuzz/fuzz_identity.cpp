// libFuzzer target: identity key files (core/identity.hpp) as Identity::load
// reads them from disk (mode 0600). Only Error may come out; an identity that
// loads saves to a file that loads to the same peer id.
#include "core/identity.hpp"
#include "fuzz_util.hpp"

#include <sys/stat.h>

using namespace apiary;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto file = fuzz::scratch_file("identity");
  fuzz::write_file(file, ByteSpan(data, size));
  ::chmod(file.c_str(), 0600);
  std::optional<Identity> identity;
  if (!fuzz::expect_only<Error>([&] { identity.emplace(Identity::load(file)); })) return 0;
  static const auto copy = fuzz::scratch_file("identity_copy");
  identity->save(copy, /*overwrite=*/true);
  fuzz::require(Identity::load(copy).peer_id() == identity->peer_id(), "identity round-trips");
  return 0;
}
