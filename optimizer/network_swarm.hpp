#pragma once
// NetworkSwarm: SwarmServices over the real network — a DHT node on its own
// thread (dht::DhtRunner over the encrypted TCP transport), the progress
// tracker refreshed in the background, averaging rounds run by
// averaging/round_runner (groups found through the DHT by averaging::Matchmaker,
// the butterfly all-reduce, rounds matched ahead of time and their retry
// key), and state sharing for late joiners (averaging::StateDonor /
// download_state: snapshots taken on demand, downloaded from several donors at
// once, hash-verified). This class is the glue between them and the training
// thread: prepare_rounds hands the runner rounds to match on the network
// thread while the training thread computes. One JoinService per node answers join
// requests of every round by key, so a prepared round and a state round can
// match at once.
// Errors: the constructor throws apiary::Error when the DHT cannot bootstrap;
// network failures later come back as outcomes (see swarm_services.hpp).
#include "averaging/group_source.hpp"
#include "averaging/state_vote.hpp"
#include "core/identity.hpp"
#include "dht/runner.hpp"
#include "net/tcp_transport.hpp"
#include "optimizer/membership_guard.hpp"
#include "optimizer/progress_tracker.hpp"
#include "optimizer/run_config.hpp"
#include "optimizer/swarm_services.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

namespace apiary::averaging {
class JoinService;
}

namespace apiary::optimizer {

// What a round's group source is asked for.
struct GroupRequest {
  std::string group_key;
  std::size_t expected_peers = 0;  // live peers the progress tracker sees (incl. this one)
  bool held = false;               // matched ahead of time: the leader holds it until release()
  std::shared_ptr<averaging::JoinService> joins;  // the node's
};

using GroupSourceFactory =
    std::function<std::unique_ptr<averaging::GroupSource>(dht::DhtNode&, const GroupRequest&)>;

struct NetworkSwarmOptions {
  Identity identity = Identity::generate();
  TcpEndpoint listen{"127.0.0.1", 0};
  bool client_mode = false;
  std::vector<PeerAddress> initial_peers;
  // The run's configuration: the swarm reads its name, target_batch_size,
  // averaging and compression (model, data set and optimizer are the trainer's).
  RunConfig config;
  // Permissioned runs: this peer's token and the check applied to others.
  Bytes token;
  std::function<bool(const PublicKey&, ByteSpan)> admit;
  // With a revocation set (the one `admit` checks): a MembershipGuard keeps it
  // current and closes connections of revoked or expired members.
  std::shared_ptr<Revocations> revocations;
  MembershipGuardOptions membership;
  // How a round finds its group. Empty: matchmaking_groups(config.averaging, client_mode).
  GroupSourceFactory groups;
};

// DHT matchmaking (averaging::Matchmaker under "<group_key>/0") with the run's
// group sizes and matchmaking time; the leader starts as soon as the live
// peers it expects have joined.
GroupSourceFactory matchmaking_groups(const AveragingConfig& averaging, bool client_mode);

// How far past the swarm's epoch that this peer's progress reports last
// showed a donor may be and still vote (reports travel late, epochs can be
// short); a stranger claiming epoch 1000 in a swarm at 20 is not even asked
// for chunks.
inline constexpr std::uint64_t kDonorEpochLead = 16;

// The state of `run` its donors vouch for (averaging/state_vote.hpp), of an
// epoch in [min_epoch, vouched_epoch + kDonorEpochLead] (`vouched_epoch`: the
// swarm's epoch in the progress this peer saw last; none: no upper bound,
// never below min_epoch); tensor sizes checked against
// `expected_sizes` before anything is allocated unless empty; donors caught
// lying are added to `bans` (kept by the caller for the run; may be null).
// nullopt if none delivered by `timeout`. Runs on the node's thread (the
// coordinator uses it for checkpoints).
asio::awaitable<std::optional<StateSnapshot>> download_run_state(
    dht::DhtNode& node, std::string run, std::uint64_t min_epoch,
    std::optional<std::uint64_t> vouched_epoch, std::vector<std::size_t> expected_sizes,
    std::chrono::milliseconds timeout, averaging::DonorBans* bans);

class NetworkSwarm : public SwarmServices {
 public:
  explicit NetworkSwarm(NetworkSwarmOptions options);
  ~NetworkSwarm() override;

  PeerAddress address() const;
  dht::DhtRunner& dht() noexcept { return *runner_; }

  void report_progress(const PeerProgress& local) override;
  GlobalProgress global_progress(std::uint64_t local_epoch) override;
  AveragingOutcome average(const std::string& group_key, std::vector<std::span<float>> tensors,
                           float weight, std::chrono::duration<double> timeout,
                           RoundKind kind) override;
  void prepare_rounds(std::vector<RoundPlan> rounds,
                      std::chrono::duration<double> timeout) override;
  bool round_started(const std::string& group_key) override;
  void abandon_rounds(std::vector<std::string> group_keys) override;
  std::optional<StateSnapshot> download_state(std::uint64_t min_epoch,
                                              std::chrono::duration<double> timeout) override;
  void serve_state(std::function<StateSnapshot()> snapshot) override;

  // The newest reports seen (for `apiary status` and the coordinator's table).
  std::vector<PeerProgress> reports();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
  std::unique_ptr<dht::DhtRunner> runner_;
};

}  // namespace apiary::optimizer
