#pragma once
// Where clients learn which experts exist. The grid is declared one prefix
// level at a time (as in hivemind): under a prefix such as "ffn.3." every
// active next coordinate maps to one expert below it ("7" → ffn.3.7 on peer P),
// so a client walks the grid prefix by prefix. The DHT implements this
// (experts/dht_directory.hpp); tests use an in-memory fake.
//
// Threading: get_children() blocks and is called from the user's (compute)
// thread, never from a network thread. Errors: a failed lookup is reported as
// "no children" (the prefix is then skipped), not thrown.
#include "net/address.hpp"

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace apiary::experts {

struct ExpertInfo {
  std::string uid;
  PeerAddress server;
  bool operator==(const ExpertInfo&) const = default;
};

// Active next coordinates under one prefix.
using PrefixChildren = std::map<std::uint32_t, ExpertInfo>;

class ExpertDirectory {
 public:
  virtual ~ExpertDirectory() = default;
  // One result per prefix, in order; a batched lookup (one round trip).
  virtual std::vector<PrefixChildren> get_children(std::span<const std::string> prefixes) = 0;
};

}  // namespace apiary::experts
