#pragma once
// Where an Averager gets its group for a round. Matchmaking through the DHT
// is one implementation; StaticGroupSource (a fixed member list, e.g. for
// benchmarks and tests) is another.
//
// Errors: find_group() returns nullopt when no group could be formed by the
// deadline; it throws apiary::Error only for local misuse.
#include "averaging/butterfly.hpp"
#include "core/clock.hpp"

#include <asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace apiary::averaging {

class GroupSource {
 public:
  virtual ~GroupSource() = default;
  // A group for the next round that contains this peer (its entry carries
  // `weight`), with schema_hash set to `schema_hash`.
  virtual asio::awaitable<std::optional<GroupInfo>> find_group(float weight,
                                                               std::uint64_t schema_hash,
                                                               Deadline deadline) = 0;
  // Matching ahead of time (see matchmaker.hpp): this peer is ready to start
  // the group it holds; or it will not average in this round after all.
  // Sources whose groups need no start signal ignore both.
  virtual void release() {}
  virtual void abandon() {}
};

// Every round uses the same members (in the same order on every peer); round
// k's group id is "<prefix>/<k>", so peers must step the same number of times.
class StaticGroupSource final : public GroupSource {
 public:
  StaticGroupSource(std::string prefix, std::vector<GroupMember> members, PeerId self);
  asio::awaitable<std::optional<GroupInfo>> find_group(float weight, std::uint64_t schema_hash,
                                                       Deadline deadline) override;

 private:
  std::string prefix_;
  std::vector<GroupMember> members_;
  PeerId self_;
  std::uint64_t round_ = 0;
};

}  // namespace apiary::averaging

namespace apiary::averaging {

// Moshpit-style rotation over a fixed grid: peer i sits at coordinates
// (i / side, i % side) of a side × side grid; even rounds group each row,
// odd rounds each column. With equal weights, two rounds give every peer the
// exact global mean (the row means, then the mean of the row means). The DHT
// version uses the same keys ("<prefix>/<round>/r<row>" or ".../c<col>") for
// matchmaking.
class GridGroupSource final : public GroupSource {
 public:
  // `members` in grid order; members.size() must be side².
  GridGroupSource(std::string prefix, std::vector<GroupMember> members, std::size_t side,
                  PeerId self);
  asio::awaitable<std::optional<GroupInfo>> find_group(float weight, std::uint64_t schema_hash,
                                                       Deadline deadline) override;

 private:
  std::string prefix_;
  std::vector<GroupMember> members_;
  std::size_t side_;
  std::size_t self_index_ = 0;
  std::uint64_t round_ = 0;
};

}  // namespace apiary::averaging
