#include "optimizer/network_swarm.hpp"

#include "averaging/butterfly.hpp"
#include "averaging/group_key_store.hpp"
#include "averaging/matchmaker.hpp"
#include "averaging/round_runner.hpp"
#include "averaging/state_sharing.hpp"
#include "core/async.hpp"
#include "core/clock.hpp"
#include "core/codec.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "dht/validator.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_future.hpp>

#include <algorithm>
#include <cmath>

namespace apiary::optimizer {

using namespace std::chrono_literals;

namespace {

constexpr double kPublishPeriodSeconds = 1.0;

constexpr double kDonorTtlSeconds = 60.0;

// The optimizer's counters travel in the state's metadata: [optimizer_steps].
Bytes encode_state_metadata(const StateSnapshot& state) {
  codec::Writer w;
  w.array(1).uint(state.optimizer_steps);
  return w.take();
}

std::uint64_t decode_optimizer_steps(ByteSpan metadata) {
  auto doc = codec::parse(metadata);
  auto a = doc.root().array("state.metadata", 1, 1);
  return a.next().uint("state.optimizer_steps");
}

// The process's own counters (averaging/round_runner, net/rpc_connection) in
// the report, for dashboards: one swarm peer per process in `apiary join`.
PeerProgress with_process_counters(PeerProgress progress) {
  auto& registry = metrics::Registry::global();
  progress.rounds_averaged = registry.counter("apiary_averaging_rounds_total").value();
  progress.rounds_failed = registry.counter("apiary_averaging_rounds_failed_total").value();
  progress.bytes_sent = registry.counter("apiary_rpc_bytes_sent_total").value();
  progress.bytes_received = registry.counter("apiary_rpc_bytes_received_total").value();
  const auto& rounds = registry.histogram("apiary_averaging_round_seconds");
  if (rounds.count() > 0)
    progress.round_seconds = rounds.sum() / static_cast<double>(rounds.count());
  return progress;
}

}  // namespace

GroupSourceFactory matchmaking_groups(const AveragingConfig& averaging, bool client_mode) {
  averaging::MatchmakingOptions base;
  base.matchmaking_time =
      std::chrono::milliseconds(static_cast<long>(averaging.matchmaking_time * 1000));
  // Long enough for declarations stored at about the same time to be seen.
  base.settle_time = std::clamp(base.matchmaking_time / 10, std::chrono::milliseconds(50),
                                std::chrono::milliseconds(200));
  base.min_group_size = std::max<std::size_t>(2, averaging.min_group_size);
  base.target_group_size = std::max<std::size_t>(base.min_group_size, averaging.target_group_size);
  base.client_mode = client_mode;
  const auto hold_window =
      std::chrono::milliseconds(static_cast<long>(averaging.held_round_window_seconds() * 1000));
  return
      [base, hold_window](dht::DhtNode& node,
                          const GroupRequest& request) -> std::unique_ptr<averaging::GroupSource> {
        auto options = base;
        options.prefix = request.group_key;
        options.hold_until_released = request.held;
        if (request.held) {
          // Matched ahead of time: the leader takes whoever joins until this peer
          // is ready, so late members still get in; the declaration lasts as long.
          options.matchmaking_time += hold_window;
          options.expected_group_size = request.expected_peers;
          options.release_grace = 2 * options.settle_time + std::chrono::milliseconds(50);
        } else {
          // Start as soon as everyone expected is in (no later than the matchmaking time).
          options.target_group_size =
              std::clamp(request.expected_peers, options.min_group_size, base.target_group_size);
        }
        return std::make_unique<averaging::Matchmaker>(
            node.rpc(), std::make_shared<averaging::DhtGroupKeyStore>(node.shared_from_this()),
            options, request.joins);
      };
}

asio::awaitable<std::optional<StateSnapshot>> download_run_state(
    dht::DhtNode& node, std::string run, std::uint64_t min_epoch,
    std::optional<std::uint64_t> vouched_epoch, std::vector<std::size_t> expected_sizes,
    std::chrono::milliseconds timeout, averaging::DonorBans* bans) {
  averaging::DhtGroupKeyStore donors(node.shared_from_this());
  averaging::DownloadOptions options{run, deadline_after(timeout)};
  options.expected_sizes = std::move(expected_sizes);
  options.bans = bans;
  options.min_epoch = min_epoch;
  // A donor further ahead than the swarm's progress vouches for is not asked.
  if (vouched_epoch) options.max_epoch = std::max(min_epoch, *vouched_epoch + kDonorEpochLead);
  averaging::StateSnapshot downloaded;
  averaging::DownloadStats stats;
  try {
    downloaded = co_await averaging::download_state(node.rpc(), donors, options, &stats);
  } catch (const std::exception& e) {
    log::info("state download: {}", e.what());
    co_return std::nullopt;
  }
  if (downloaded.epoch < min_epoch) {
    log::info("state download: the newest donors are at epoch {}, older than {}", downloaded.epoch,
              min_epoch);
    co_return std::nullopt;
  }
  StateSnapshot state;
  state.epoch = downloaded.epoch;
  try {
    state.optimizer_steps = decode_optimizer_steps(downloaded.metadata);
  } catch (const Error& e) {
    log::warn("state download: bad metadata ({})", e.what());
    co_return std::nullopt;
  }
  log::debug("state of epoch {} downloaded from {} donor(s), {} chunks, {} retried, {} refused",
             state.epoch, stats.donors_used, stats.chunks, stats.retries, stats.donors_refused);
  state.tensors = std::move(downloaded.tensors);
  co_return state;
}

// A round matched ahead of time (averaging/round_runner.hpp) and the live
// peers expected in it when it was planned.
struct PreparedRound {
  std::shared_ptr<averaging::PreparedRound> round;
  std::size_t expected = 0;
};

// compression.gradients for gradient rounds; for state rounds
// compression.state applies to the parameters (tensor 0) and optimizer
// statistics travel in fp32: fp16 flushes Adam's second moments (~1e-10) to
// zero and 8-bit blocks lose them next to larger values, and either turns the
// next step into a huge one.
averaging::CompressionPolicy compression_policy(const CompressionConfig& compression,
                                                RoundKind kind, std::size_t tensors) {
  averaging::CompressionPolicy policy;
  policy.min_compressed_elements = compression.min_compress_elements;
  if (kind == RoundKind::state) {
    policy.codec = compression.state;
    policy.per_tensor.assign(tensors, averaging::Codec::none);
    if (!policy.per_tensor.empty()) policy.per_tensor[0] = std::nullopt;
  } else {
    policy.codec = compression.gradients;
  }
  return policy;
}

struct NetworkSwarm::Impl {
  NetworkSwarmOptions options;
  dht::DhtNode* node = nullptr;  // owned by the runner; used on its thread only
  // Shared: a coroutine suspended inside one of them (a refresh, a publish,
  // an announcement, a round) keeps it alive past the teardown.
  std::shared_ptr<ProgressTracker> tracker;
  std::shared_ptr<averaging::AllReduceService> allreduce;
  std::shared_ptr<averaging::StateDonor> donor;
  std::shared_ptr<averaging::DhtGroupKeyStore> donors;  // where donors announce themselves
  averaging::DonorBans donor_bans;  // donors caught lying, for the run (the node's thread)
  std::shared_ptr<averaging::JoinService> joins;  // every round's join requests
  std::shared_ptr<MembershipGuard> guard;         // token runs with revocations

  std::mutex prepared_mutex;  // guards the map (entries: see PreparedRound)
  std::map<std::string, PreparedRound> prepared;
  double epoch_started_at = -1;  // DHT time this peer's current epoch began (under `mutex`)

  std::mutex mutex;  // guards what the training thread reads
  std::vector<PeerProgress> reports;
  PeerProgress local;
  bool have_local = false;
  std::uint64_t published_epoch = 0;
  double published_time = 0;
  double published_samples_per_second = 0;
  // The optimizer's state, taken on demand. Its own mutex: a donor holds it
  // while a snapshot is taken on the network thread, and serve_state({})
  // waits for that, so the optimizer may be destroyed as soon as it returns.
  std::mutex snapshot_mutex;
  std::function<StateSnapshot()> snapshot;
  std::atomic<bool> stopping{false};

  std::optional<averaging::StateSnapshot> take_snapshot() {
    std::lock_guard lock(snapshot_mutex);
    if (!snapshot) return std::nullopt;
    StateSnapshot s = snapshot();
    averaging::StateSnapshot out;
    out.epoch = s.epoch;
    out.metadata = encode_state_metadata(s);
    out.tensors = std::move(s.tensors);
    return out;
  }

  bool serving() {
    std::lock_guard lock(snapshot_mutex);
    return static_cast<bool>(snapshot);
  }

  asio::awaitable<void> announce_donor() {
    const auto serving_donor = donor;
    const auto store = donors;
    if (!serving_donor || !store) co_return;
    const double expiration = dht::system_dht_time() + kDonorTtlSeconds;
    const bool stored = co_await serving_donor->announce(*store, options.config.run, expiration);
    if (!stored) log::debug("donor announcement not stored");
  }

  std::shared_ptr<averaging::PreparedRound> take_prepared(const std::string& key) {
    std::lock_guard lock(prepared_mutex);
    auto it = prepared.find(key);
    if (it == prepared.end()) return nullptr;
    auto round = std::move(it->second.round);
    prepared.erase(it);
    return round;
  }

  // Live peers that will average (this one included).
  std::size_t expected_peers() {
    std::size_t expected = 0;
    for (const auto& r : reports_with_local()) {
      // Live peers report at least every second while training; a silent one is gone.
      if (r.report_time > dht::system_dht_time() - 5 && !r.client_mode) ++expected;
    }
    return expected;
  }

  std::vector<PeerProgress> reports_with_local() {
    std::lock_guard lock(mutex);
    std::vector<PeerProgress> out = reports;
    if (have_local) {
      // This peer's freshest numbers replace what the DHT last returned for it.
      const std::string self = options.identity.peer_id().to_string();
      out.erase(std::remove_if(out.begin(), out.end(),
                               [&](const PeerProgress& p) { return p.peer == self; }),
                out.end());
      out.push_back(local);
      out.back().peer = self;
    }
    return out;
  }

  asio::awaitable<void> refresh_loop() {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!stopping) {
      std::uint64_t epoch = 0;
      {
        std::lock_guard lock(mutex);
        epoch = local.epoch;
      }
      double wait = 1.0;
      try {
        const auto progress_tracker = tracker;
        if (!progress_tracker) break;
        const GlobalProgress g = co_await progress_tracker->refresh(epoch);
        {
          std::lock_guard lock(mutex);
          reports = progress_tracker->last_reports();
        }
        // Look again at least once per matchmaking window, so a peer notices
        // that the others reached the target before their round closes.
        const double longest = std::clamp(options.config.averaging.matchmaking_time, 0.5, 2.0);
        wait = std::clamp(g.next_refresh - dht::system_dht_time(), 0.2, longest);
      } catch (const std::exception& e) {
        log::debug("progress refresh failed: {}", e.what());
      }
      timer.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::duration<double>(wait)));
      co_await timer.async_wait(asio::use_awaitable);
    }
  }

  asio::awaitable<void> donor_loop() {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    while (!stopping) {
      if (serving()) {
        try {
          co_await announce_donor();
        } catch (const std::exception& e) {
          log::debug("donor announcement failed: {}", e.what());
        }
      }
      timer.expires_after(15s);
      co_await timer.async_wait(asio::use_awaitable);
    }
  }
};

NetworkSwarm::NetworkSwarm(NetworkSwarmOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  auto& o = impl_->options;
  if (!o.groups) o.groups = matchmaking_groups(o.config.averaging, o.client_mode);
  dht::DhtOptions dht_options;
  dht_options.client_mode = o.client_mode;
  dht_options.validator = std::make_shared<dht::OwnerSignatureValidator>(o.identity);
  auto factory = [identity = o.identity, endpoint = o.listen, client = o.client_mode,
                  token = o.token, admit = o.admit](asio::any_io_executor executor) {
    TransportOptions transport;
    transport.client_mode = client;
    transport.own_token = token;
    transport.admit = admit;
    return make_tcp_transport(std::move(executor), identity, endpoint, transport);
  };
  runner_ = std::make_unique<dht::DhtRunner>(factory, o.initial_peers, dht_options);
  runner_
      ->run([impl = impl_](dht::DhtNode& node) -> asio::awaitable<void> {
        impl->node = &node;
        ProgressOptions progress;
        progress.min_refresh_period = 0.2;  // near the target, look often
        if (impl->options.config.max_peer_samples_per_second > 0)
          progress.max_peer_samples_per_second = impl->options.config.max_peer_samples_per_second;
        impl->tracker = std::make_shared<ProgressTracker>(
            node.shared_from_this(), impl->options.identity.public_key(), impl->options.config.run,
            impl->options.config.epoch_samples_bound(), progress);
        impl->joins = std::make_shared<averaging::JoinService>(node.rpc());
        impl->allreduce = std::make_shared<averaging::AllReduceService>(node.rpc());
        impl->donor = std::make_shared<averaging::StateDonor>(node.rpc());
        impl->donors = std::make_shared<averaging::DhtGroupKeyStore>(node.shared_from_this());
        if (impl->options.revocations) {
          impl->guard = std::make_shared<MembershipGuard>(
              node.shared_from_this(), impl->options.revocations, impl->options.membership);
          impl->guard->start();
        }
        auto executor = co_await asio::this_coro::executor;
        asio::co_spawn(executor, impl->refresh_loop(), asio::detached);
        if (!impl->options.client_mode)
          asio::co_spawn(executor, impl->donor_loop(), asio::detached);
        co_return;
      })
      .get();
}

NetworkSwarm::~NetworkSwarm() {
  impl_->stopping = true;
  // Tear down on the network thread, then stop it.
  runner_
      ->run([impl = impl_](dht::DhtNode&) -> asio::awaitable<void> {
        {
          // Disband what this peer leads, so its followers move on now.
          std::lock_guard lock(impl->prepared_mutex);
          for (auto& [key, prepared] : impl->prepared) prepared.round->cancel();
          impl->prepared.clear();
        }
        if (impl->guard) impl->guard->stop();
        impl->guard.reset();
        impl->donor.reset();
        impl->donors.reset();
        impl->allreduce.reset();
        impl->tracker.reset();
        co_return;
      })
      .get();
  runner_->shutdown();
}

PeerAddress NetworkSwarm::address() const {
  return runner_->address();
}

std::vector<PeerProgress> NetworkSwarm::reports() {
  return impl_->reports_with_local();
}

void NetworkSwarm::report_progress(const PeerProgress& local) {
  // The local copy is refreshed on every step (this peer's own decisions use
  // it at once); the DHT gets it at most once a second, and at every new epoch.
  bool publish = false;
  {
    std::lock_guard lock(impl_->mutex);
    // Throughput drives everyone's extrapolation: a first figure (at start
    // the others would count this peer as idle) or a change of a quarter
    // goes out at once.
    const double published_sps = impl_->published_samples_per_second;
    const bool throughput_changed =
        std::abs(local.samples_per_second - published_sps) > 0.25 * published_sps;
    publish = !impl_->have_local || local.epoch != impl_->published_epoch ||
              local.report_time - impl_->published_time >= kPublishPeriodSeconds ||
              throughput_changed;
    if (publish) {
      impl_->published_epoch = local.epoch;
      impl_->published_time = local.report_time;
      impl_->published_samples_per_second = local.samples_per_second;
    }
    if (!impl_->have_local || local.epoch != impl_->local.epoch)
      impl_->epoch_started_at = local.report_time;
    impl_->local = local;
    impl_->have_local = true;
  }
  if (!publish) return;
  (void)runner_->run(
      [impl = impl_, local = with_process_counters(local)](dht::DhtNode&) -> asio::awaitable<void> {
        const auto progress_tracker = impl->tracker;
        if (progress_tracker) co_await progress_tracker->publish(local);
      });
}

GlobalProgress NetworkSwarm::global_progress(std::uint64_t local_epoch) {
  const auto reports = impl_->reports_with_local();
  double epoch_started_at = -1;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->have_local && impl_->local.epoch == local_epoch)
      epoch_started_at = impl_->epoch_started_at;
  }
  return estimate_progress(reports, local_epoch, impl_->options.config.epoch_samples_bound(),
                           dht::system_dht_time(), {}, epoch_started_at);
}

AveragingOutcome NetworkSwarm::average(const std::string& group_key,
                                       std::vector<std::span<float>> tensors, float weight,
                                       std::chrono::duration<double> timeout, RoundKind kind) {
  const auto started = SteadyClock::now();
  const Deadline deadline = deadline_after(timeout, started);
  const std::size_t expected = impl_->expected_peers();
  auto prepared = impl_->take_prepared(group_key);
  averaging::AllReduceOptions allreduce;
  allreduce.compression =
      compression_policy(impl_->options.config.compression, kind, tensors.size());
  auto future =
      runner_->run([impl = impl_, group_key, tensors, weight, expected, deadline, allreduce,
                    prepared](dht::DhtNode& node) mutable -> asio::awaitable<AveragingOutcome> {
        AveragingOutcome out;
        const auto service = impl->allreduce;
        if (!service) {
          out.error = "the swarm is shutting down";
          co_return out;
        }
        averaging::RoundRequest request;
        request.weight = weight;
        request.tensors = averaging::TensorSet(std::move(tensors));
        request.allreduce = allreduce;
        request.deadline = deadline;
        averaging::GroupSourceFor groups = [&](const std::string& key) {
          return impl->options.groups(node, GroupRequest{key, expected, false, impl->joins});
        };
        const averaging::StepResult step = co_await averaging::run_round(
            *service, group_key, std::move(prepared), groups, std::move(request));
        out.ok = step.ok();
        out.error = step.error;
        out.group_size = step.group_size - step.failed_peers.size();
        for (const auto& p : step.failed_peers) out.failed_peers.push_back(p.to_string());
        out.bytes_sent = step.bytes_sent;
        out.bytes_received = step.bytes_received;
        co_return out;
      });
  AveragingOutcome outcome;
  try {
    outcome = future.get();
  } catch (const std::exception& e) {
    outcome.ok = false;
    outcome.error = e.what();
  }
  outcome.seconds = seconds_since(started);
  return outcome;
}

void NetworkSwarm::prepare_rounds(std::vector<RoundPlan> rounds,
                                  std::chrono::duration<double> timeout) {
  const Deadline deadline = deadline_after(timeout);
  const std::size_t expected = impl_->expected_peers();
  std::vector<PreparedRound> fresh;
  {
    std::lock_guard lock(impl_->prepared_mutex);
    for (const auto& plan : rounds) {
      if (impl_->prepared.count(plan.group_key)) continue;
      const auto policy =
          compression_policy(impl_->options.config.compression, plan.kind, plan.sizes.size());
      PreparedRound prepared{std::make_shared<averaging::PreparedRound>(
                                 plan.group_key, averaging::schema_hash(plan.sizes, policy)),
                             expected};
      impl_->prepared[plan.group_key] = prepared;
      fresh.push_back(std::move(prepared));
    }
  }
  if (fresh.empty()) return;
  (void)runner_->run([impl = impl_, fresh, deadline](dht::DhtNode& node) -> asio::awaitable<void> {
    auto executor = co_await asio::this_coro::executor;
    for (const auto& prepared : fresh) {
      if (prepared.round->cancelled()) continue;
      GroupRequest request{prepared.round->key(), prepared.expected, true, impl->joins};
      prepared.round->begin(executor, impl->options.groups(node, request), deadline);
    }
  });
}

void NetworkSwarm::abandon_rounds(std::vector<std::string> group_keys) {
  std::vector<std::shared_ptr<averaging::PreparedRound>> dropped;
  for (const auto& key : group_keys)
    if (auto round = impl_->take_prepared(key)) dropped.push_back(std::move(round));
  if (dropped.empty()) return;
  (void)runner_->run([dropped](dht::DhtNode&) -> asio::awaitable<void> {
    for (auto& round : dropped) round->cancel();
    co_return;
  });
}

bool NetworkSwarm::round_started(const std::string& group_key) {
  std::lock_guard lock(impl_->prepared_mutex);
  auto it = impl_->prepared.find(group_key);
  return it != impl_->prepared.end() && it->second.round->started();
}

std::optional<StateSnapshot> NetworkSwarm::download_state(std::uint64_t min_epoch,
                                                          std::chrono::duration<double> timeout) {
  std::vector<std::size_t> sizes;
  {
    std::lock_guard lock(impl_->snapshot_mutex);
    if (impl_->snapshot) {
      for (const auto& t : impl_->snapshot().tensors) sizes.push_back(t.size());
    }
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  try {
    return runner_
        ->run([impl = impl_, min_epoch, sizes, ms](dht::DhtNode& node) {
          std::optional<std::uint64_t> vouched;
          if (impl->tracker && impl->tracker->last_estimate())
            vouched = impl->tracker->last_estimate()->global_epoch;
          return download_run_state(node, impl->options.config.run, min_epoch, vouched, sizes, ms,
                                    &impl->donor_bans);
        })
        .get();
  } catch (const std::exception& e) {
    log::warn("state download failed: {}", e.what());
    return std::nullopt;
  }
}

void NetworkSwarm::serve_state(std::function<StateSnapshot()> snapshot) {
  const bool serving = static_cast<bool>(snapshot);
  {
    std::lock_guard lock(impl_->snapshot_mutex);
    impl_->snapshot = std::move(snapshot);
  }
  (void)runner_->run([impl = impl_, serving](dht::DhtNode&) -> asio::awaitable<void> {
    if (!impl->donor) co_return;
    if (!serving) {
      impl->donor->serve_on_demand({});
      co_return;
    }
    impl->donor->serve_on_demand([weak = std::weak_ptr<Impl>(impl)] {
      auto alive = weak.lock();
      return alive ? alive->take_snapshot() : std::nullopt;
    });
    // Announce at once: a joiner may be looking for donors right now.
    if (!impl->options.client_mode) co_await impl->announce_donor();
  });
}

}  // namespace apiary::optimizer
