// libFuzzer target: peer addresses and peer ids as users and peers type them
// (net/address.hpp, core/identity.hpp). Only Error may come out of parse; what
// parses prints back to text that parses to the same address.
#include "fuzz_util.hpp"
#include "net/address.hpp"

using namespace apiary;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  PeerAddress address;
  if (fuzz::expect_only<Error>([&] { address = PeerAddress::parse(text); })) {
    fuzz::require(PeerAddress::parse(address.to_string()) == address, "address round-trips");
  }
  if (auto id = PeerId::parse(text)) {
    fuzz::require(PeerId::parse(id->to_string()) == id, "peer id round-trips");
  }
  return 0;
}
