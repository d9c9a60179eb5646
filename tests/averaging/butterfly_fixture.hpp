#pragma once
// Shared test fixture: N in-process peers (InprocNetwork + RpcNode +
// AllReduceService) on one io_context, and helpers to run coroutines with a
// hard time limit.
#include "averaging/butterfly.hpp"
#include "core/identity.hpp"
#include "net/inproc_transport.hpp"
#include "net/rpc.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <chrono>
#include <future>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

namespace apiary::averaging::test {

// Runs the io_context until `future` is ready; throws after `limit`.
template <typename T>
T wait(asio::io_context& ctx, std::future<T>& future,
       std::chrono::milliseconds limit = std::chrono::seconds{30}) {
  const auto end = std::chrono::steady_clock::now() + limit;
  ctx.restart();
  while (future.wait_for(std::chrono::seconds{0}) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > end) throw std::runtime_error("test task timed out");
    ctx.run_one_for(std::chrono::milliseconds{20});
    if (ctx.stopped()) ctx.restart();
  }
  return future.get();
}

inline asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
}

// Kills `peer` on `network` after `delay` (spawn it detached on the swarm's context).
inline asio::awaitable<void> kill_after(std::shared_ptr<InprocNetwork> network, PeerId peer,
                                        std::chrono::milliseconds delay) {
  co_await sleep_for(delay);
  network->kill(peer);
}

// Seconds since the epoch, plus `ahead`: an expiration for declarations.
inline double system_seconds_from_now(double ahead) {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
             .count() +
         ahead;
}

struct Peer {
  std::unique_ptr<rpc::RpcNode> node;
  std::unique_ptr<AllReduceService> service;
  std::vector<std::vector<float>> tensors;

  TensorSet tensor_set() {
    std::vector<std::span<float>> spans;
    for (auto& t : tensors) spans.emplace_back(t);
    return TensorSet(std::move(spans));
  }
};

struct Swarm {
  asio::io_context ctx;
  std::shared_ptr<InprocNetwork> network = InprocNetwork::create(ctx.get_executor());
  std::vector<Peer> peers;

  // Peers with random tensors of the given sizes (seeded by index).
  void add_peers(std::size_t count, const std::vector<std::size_t>& sizes,
                 std::function<TransportPtr(TransportPtr)> wrap = {}) {
    for (std::size_t i = 0; i < count; ++i) {
      Peer peer;
      auto transport = network->create_transport(Identity::generate());
      if (wrap) transport = wrap(transport);
      peer.node = std::make_unique<rpc::RpcNode>(transport);
      peer.service = std::make_unique<AllReduceService>(*peer.node);
      peer.node->start();
      std::mt19937 rng(static_cast<unsigned>(peers.size() * 7919 + 1));
      std::normal_distribution<float> dist(0.0f, 1.0f);
      for (std::size_t size : sizes) {
        std::vector<float> t(size);
        for (auto& x : t) x = dist(rng);
        peer.tensors.push_back(std::move(t));
      }
      peers.push_back(std::move(peer));
    }
  }

  GroupInfo group(std::vector<float> weights, std::vector<double> bandwidths,
                  std::string id = "round-1") {
    GroupInfo g;
    g.group_id.assign(id.begin(), id.end());
    g.schema_hash = 42;
    for (std::size_t i = 0; i < peers.size(); ++i) {
      GroupMember m;
      m.address = peers[i].node->local_address();
      m.weight = i < weights.size() ? weights[i] : 1.0f;
      m.bandwidth = i < bandwidths.size() ? bandwidths[i] : 1.0;
      g.members.push_back(m);
    }
    return g;
  }

  // Starts run() on the listed peers; the futures complete with their results.
  std::vector<std::future<AllReduceResult>> start(const GroupInfo& group,
                                                  const std::vector<std::size_t>& who,
                                                  AllReduceOptions options,
                                                  std::chrono::milliseconds round_time) {
    std::vector<std::future<AllReduceResult>> futures;
    const auto deadline = std::chrono::steady_clock::now() + round_time;
    for (std::size_t i : who) {
      futures.push_back(asio::co_spawn(
          ctx, peers[i].service->run(group, peers[i].tensor_set(), std::nullopt, options, deadline),
          asio::use_future));
    }
    return futures;
  }
};

}  // namespace apiary::averaging::test
