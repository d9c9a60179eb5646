// bench_dht — how well does the DHT find what was stored, and how fast?
// N nodes in one process (in-process transport or TCP loopback, optionally
// through the link emulator), K keys stored from random nodes, a fraction of
// the nodes killed, then every key looked up once from a random live node.
// Reports store/get success rates, latency p50/p99, hops and find requests
// per lookup (and with --latency-ms, the get p50 in round trips).
//
//   bench_dht [--nodes N] [--keys K] [--transport inproc|tcp] [--latency-ms X]
//             [--kill-fraction F] [--get-concurrency C] [--seed S] [--json]
#include "core/async.hpp"
#include "core/identity.hpp"
#include "dht/swarm.hpp"
#include "net/inproc_transport.hpp"
#include "net/link_emulator.hpp"
#include "net/tcp_transport.hpp"

#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <numeric>
#include <string>
#include <vector>

using namespace apiary;
using namespace apiary::dht;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Config {
  std::size_t nodes = 128;
  std::size_t keys = 1024;
  std::string transport = "inproc";
  double latency_ms = 0;
  double kill_fraction = 0;
  std::size_t store_concurrency = 64;
  std::size_t get_concurrency = 1;
  std::uint64_t seed = 1;
  bool json = false;
};

struct Results {
  double setup_s = 0, store_s = 0, get_s = 0;
  std::size_t stores_ok = 0, gets_ok = 0, killed = 0;
  std::vector<double> store_ms, get_ms, hops, requests;
};

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(rank, v.size() - 1)];
}

double ms_since(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}

Bytes key_of(std::size_t i) {
  const std::string s = "bench-key-" + std::to_string(i);
  return Bytes(s.begin(), s.end());
}
Bytes value_of(std::size_t i) {
  const std::string s = "value-" + std::to_string(i * 7919);
  return Bytes(s.begin(), s.end());
}

// Runs `count` jobs with at most `concurrency` at once.
asio::awaitable<void> run_jobs(std::size_t count, std::size_t concurrency,
                               std::function<asio::awaitable<void>(std::size_t)> job) {
  std::size_t next = 0;
  std::vector<async::Task> workers;
  for (std::size_t w = 0; w < std::max<std::size_t>(1, concurrency); ++w)
    workers.push_back([&]() -> asio::awaitable<void> {
      while (next < count) {
        const std::size_t i = next++;
        co_await job(i);
      }
    });
  co_await async::run_concurrently(std::move(workers));
}

asio::awaitable<void> bench(LocalSwarm& swarm, const Config& cfg, Results& r) {
  auto t0 = SteadyClock::now();
  co_await swarm.grow(cfg.nodes, cfg.latency_ms > 0 ? 64 : 16);
  r.setup_s = ms_since(t0) / 1000;

  const double expiration = system_dht_time() + 3600;
  std::vector<std::size_t> origin(cfg.keys);
  for (auto& o : origin) o = swarm.rng()() % swarm.size();
  t0 = SteadyClock::now();
  co_await run_jobs(cfg.keys, cfg.store_concurrency, [&](std::size_t i) -> asio::awaitable<void> {
    const auto start = SteadyClock::now();
    auto node = swarm.node(origin[i]);
    auto result = co_await node->store(key_of(i), std::nullopt, value_of(i), expiration);
    r.store_ms.push_back(ms_since(start));
    if (result.ok()) ++r.stores_ok;
  });
  r.store_s = ms_since(t0) / 1000;

  std::vector<std::size_t> order(swarm.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), swarm.rng());
  r.killed = static_cast<std::size_t>(cfg.kill_fraction * static_cast<double>(swarm.size()));
  for (std::size_t i = 0; i < r.killed; ++i) swarm.kill(order[i]);
  const auto alive = swarm.alive_indices();

  t0 = SteadyClock::now();
  co_await run_jobs(cfg.keys, cfg.get_concurrency, [&](std::size_t i) -> asio::awaitable<void> {
    auto node = swarm.node(alive[swarm.rng()() % alive.size()]);
    std::vector<Bytes> keys(1, key_of(i));
    const auto start = SteadyClock::now();
    auto results = co_await node->get_many(std::move(keys));
    r.get_ms.push_back(ms_since(start));
    const auto& g = results.front();
    r.hops.push_back(g.hops);
    r.requests.push_back(static_cast<double>(g.requests));
    if (g.value && !g.value->is_dictionary && g.value->regular.value == value_of(i)) ++r.gets_ok;
  });
  r.get_s = ms_since(t0) / 1000;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"bench_dht — DHT store/get success and latency over many nodes in one process"};
  app.add_option("--nodes", cfg.nodes, "DHT nodes")->capture_default_str();
  app.add_option("--keys", cfg.keys, "keys stored, then each looked up once")
      ->capture_default_str();
  app.add_option("--transport", cfg.transport, "inproc | tcp (loopback)")
      ->check(CLI::IsMember({"inproc", "tcp"}))
      ->capture_default_str();
  app.add_option("--latency-ms", cfg.latency_ms,
                 "one-way latency between two peers (link emulator; each peer's link gets half)");
  app.add_option("--kill-fraction", cfg.kill_fraction, "fraction of nodes killed after storing")
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--store-concurrency", cfg.store_concurrency, "stores in flight")
      ->capture_default_str();
  app.add_option("--get-concurrency", cfg.get_concurrency, "gets in flight (1: pure latency)")
      ->capture_default_str();
  app.add_option("--seed", cfg.seed, "seed for node choice and kills")->capture_default_str();
  app.add_flag("--json", cfg.json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);

  try {
    asio::io_context io;
    LocalSwarm::TransportFactory base =
        cfg.transport == "tcp" ? LocalSwarm::tcp_loopback(io.get_executor())
                               : LocalSwarm::inproc(InprocNetwork::create(io.get_executor()));
    LocalSwarm::TransportFactory factory = base;
    if (cfg.latency_ms > 0) {
      std::uint64_t seed = cfg.seed;
      factory = [base, latency = cfg.latency_ms, seed](const Identity& id, bool client) mutable {
        LinkProfile profile;
        // Both ends are shaped and their latencies add up: half on each side.
        profile.latency = std::chrono::microseconds(static_cast<std::int64_t>(latency * 500));
        profile.seed = seed++;
        return make_link_emulator(base(id, client), profile);
      };
    }
    DhtOptions options;
    options.maintenance_interval =
        std::chrono::milliseconds(60000);  // no refresh noise during the run
    LocalSwarm swarm(io.get_executor(), factory, options, cfg.seed);
    Results r;
    std::exception_ptr error;
    bool done = false;
    asio::co_spawn(io, bench(swarm, cfg, r), [&](std::exception_ptr e) {
      error = e;
      done = true;
      swarm.stop();
      io.stop();
    });
    io.run();
    if (error) std::rethrow_exception(error);
    if (!done) throw std::runtime_error("benchmark did not finish");

    const double n = static_cast<double>(cfg.keys);
    const double rtt_ms = 2 * cfg.latency_ms;
    nlohmann::json out{
        {"nodes", cfg.nodes},
        {"keys", cfg.keys},
        {"transport", cfg.transport},
        {"latency_ms", cfg.latency_ms},
        {"kill_fraction", cfg.kill_fraction},
        {"killed_nodes", r.killed},
        {"store_success_rate", r.stores_ok / n},
        {"get_success_rate", r.gets_ok / n},
        {"store_p50_ms", quantile(r.store_ms, 0.5)},
        {"store_p99_ms", quantile(r.store_ms, 0.99)},
        {"get_p50_ms", quantile(r.get_ms, 0.5)},
        {"get_p99_ms", quantile(r.get_ms, 0.99)},
        {"hops_p50", quantile(r.hops, 0.5)},
        {"hops_p99", quantile(r.hops, 0.99)},
        {"requests_per_get_p50", quantile(r.requests, 0.5)},
        {"requests_per_get_mean",
         r.requests.empty() ? 0.0 : std::accumulate(r.requests.begin(), r.requests.end(), 0.0) / n},
        {"get_p50_round_trips", rtt_ms > 0 ? quantile(r.get_ms, 0.5) / rtt_ms : 0.0},
        {"setup_s", r.setup_s},
        {"store_phase_s", r.store_s},
        {"get_phase_s", r.get_s}};
    if (cfg.json) {
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf(
          "bench_dht: %zu nodes (%s%s), %zu keys, %zu nodes killed after storing\n", cfg.nodes,
          cfg.transport.c_str(),
          cfg.latency_ms > 0 ? (", " + std::to_string(cfg.latency_ms) + " ms one-way").c_str() : "",
          cfg.keys, r.killed);
      std::printf("%-28s %12s\n", "measure", "value");
      std::printf("%-28s %11.3f %%\n", "store success", 100 * r.stores_ok / n);
      std::printf("%-28s %11.3f %%\n", "get success", 100 * r.gets_ok / n);
      std::printf("%-28s %9.3f ms\n", "store p50", quantile(r.store_ms, 0.5));
      std::printf("%-28s %9.3f ms\n", "store p99", quantile(r.store_ms, 0.99));
      std::printf("%-28s %9.3f ms\n", "get p50", quantile(r.get_ms, 0.5));
      std::printf("%-28s %9.3f ms\n", "get p99", quantile(r.get_ms, 0.99));
      if (rtt_ms > 0)
        std::printf("%-28s %12.2f\n", "get p50 in round trips", quantile(r.get_ms, 0.5) / rtt_ms);
      std::printf("%-28s %12.0f\n", "hops p50", quantile(r.hops, 0.5));
      std::printf("%-28s %12.0f\n", "find requests per get p50", quantile(r.requests, 0.5));
      std::printf("%-28s %10.1f s\n", "setup (bootstrap)", r.setup_s);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dht: %s\n", e.what());
    return 1;
  }
  return 0;
}
