#pragma once
// An in-memory ExpertDirectory: what the DHT would hold after servers declared
// their experts (one entry per prefix level), plus optional "ghost" prefixes
// that are declared but have nothing left under them.
#include "experts/directory.hpp"
#include "experts/expert_uid.hpp"

#include <set>

namespace apiary::experts::testing {

class FakeDirectory : public ExpertDirectory {
 public:
  void declare(const std::string& uid, const PeerAddress& server = {}) {
    auto parsed = ExpertUid::parse(uid);
    for (std::size_t level = 0; level < parsed.coords.size(); ++level) {
      table_[parsed.prefix(level)][parsed.coords[level]] = ExpertInfo{uid, server};
    }
  }
  // A stale entry: `prefix` claims child `coord`, but nothing is under it.
  void declare_ghost(const std::string& prefix, std::uint32_t coord) {
    table_[prefix][coord] = ExpertInfo{prefix + std::to_string(coord) + ".0", {}};
  }
  std::vector<PrefixChildren> get_children(std::span<const std::string> prefixes) override {
    ++calls;
    std::vector<PrefixChildren> out;
    for (const auto& p : prefixes) {
      asked.push_back(p);
      auto it = table_.find(p);
      out.push_back(it == table_.end() ? PrefixChildren{} : it->second);
    }
    return out;
  }
  std::size_t calls = 0;
  std::vector<std::string> asked;

 private:
  std::map<std::string, PrefixChildren> table_;
};

}  // namespace apiary::experts::testing
