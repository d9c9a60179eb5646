#pragma once
// Matchmaking: forms an all-reduce group for each round through a
// GroupKeyStore (the DHT in production).
//
// Round r uses the group key "<prefix>/<r>". Every peer that can accept
// connections declares itself under the key with expiration now +
// matchmaking_time. After a short settle delay each peer lists the key; the
// declaration with the earliest expiration (ties: smaller peer id) leads. The
// leader accepts "averaging.join" requests and starts the round when the group
// reaches target_group_size, or when matchmaking_time is up with at least
// min_group_size members; otherwise it disbands. Followers send one join
// request (a long poll) and get the agreed GroupInfo back, or a rejection with
// a clear reason: not_a_leader (with the leader it follows, which the joiner
// then tries), group_full, bad_schema, expired, duplicate, disbanded.
// Client-mode peers never declare and join only as followers; auxiliary peers
// join with the auxiliary flag (they reduce but contribute nothing).
//
// Matching ahead of time (MatchmakingOptions::hold_until_released): the group
// forms while its members still compute, and its leader holds it — followers
// keep waiting in their join request — until release() says this peer is
// ready; then the round starts at once with whoever joined (at least
// min_group_size). Followers learn that the round started when find_group()
// returns. abandon() disbands a held group (the round will not happen).
//
// Several rounds may match at once on one node (e.g. the next epoch's, ahead
// of time, while a state round of this one matches): give their Matchmakers
// one JoinService, which answers join requests by group key.
//
// The protocol logic is MatchmakingState (matchmaking_state.hpp, no I/O);
// this class drives it. Threading: runs on the RpcNode's executor. Errors: find_group() returns
// nullopt when no group formed by the deadline; protocol faults of other
// peers never throw.
#include "averaging/group_key_store.hpp"
#include "averaging/group_source.hpp"
#include "averaging/join_wire.hpp"
#include "averaging/matchmaking_state.hpp"
#include "net/rpc.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace apiary::averaging {

// Moshpit-style grid rotation: a peer at (row, col) of a side × side grid uses
// "/r<row>" in even rounds and "/c<col>" in odd ones, so after two rounds with
// equal weights every peer holds the mean of all side² peers.
std::function<std::string(std::uint64_t)> moshpit_suffix(std::size_t row, std::size_t col);

// Answers kJoinMethod on one node for every Matchmaker given it, by group key.
// Lives on the node's executor; keep it alive as long as its Matchmakers.
class JoinService {
 public:
  explicit JoinService(rpc::RpcNode& node);
  struct Registry;

 private:
  friend class Matchmaker;
  std::shared_ptr<Registry> registry_;
};

class Matchmaker final : public GroupSource {
 public:
  // Without `joins`, the matchmaker registers a JoinService of its own (the
  // node's last registration answers join requests).
  Matchmaker(rpc::RpcNode& node, std::shared_ptr<GroupKeyStore> store, MatchmakingOptions options,
             std::shared_ptr<JoinService> joins = nullptr);
  ~Matchmaker() override;

  asio::awaitable<std::optional<GroupInfo>> find_group(float weight, std::uint64_t schema_hash,
                                                       Deadline deadline) override;
  // hold_until_released: this peer is ready — start the held group (on the executor).
  void release() override;
  // Disband the group this peer leads (or will lead) in this round.
  void abandon() override;

  const MatchmakingStats& stats() const noexcept;
  // Round counter (the next find_group uses this round's key).
  void set_round(std::uint64_t round) noexcept { round_ = round; }

  struct State;

 private:
  rpc::RpcNode& node_;
  std::shared_ptr<GroupKeyStore> store_;
  MatchmakingOptions options_;
  std::shared_ptr<JoinService> joins_;
  std::shared_ptr<State> state_;
  std::uint64_t round_ = 0;

  asio::awaitable<void> join(const MatchAction& action);
};

}  // namespace apiary::averaging
