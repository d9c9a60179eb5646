// bench_allreduce — how fast is butterfly all-reduce, and how close to the
// link bound does it get?
//
// N peers (one process; with --transport tcp each peer has its own io_context
// thread and an encrypted TCP loopback transport, with inproc they share one
// in-process network) average S bytes of fp32 per peer with an Averager,
// `--rounds` times after one warm-up round.
//
//   bench_allreduce [--peers N] [--size BYTES] [--compression none|fp16|bf16|8bit]
//                   [--transport tcp|inproc] [--link-mbps X] [--latency-ms Y]
//                   [--rounds R] [--chunk-kib K] [--threads T] [--json]
//
// --link-mbps emulates a per-peer link of X Mbit/s in each direction: the
// link emulator shapes each connection, so each of a peer's n−1 connections
// gets X/(n−1) (in butterfly all-reduce all of them are busy at once).
// Figures: seconds_p50 (round wall time, median), algbw_gbps = S / t,
// busbw_gbps = algbw · 2(n−1)/n (NCCL's convention), wire_bytes_per_peer (payload
// bytes one peer sends per round), bound_ratio = (2(n−1)S/(nB)) / t — the fp32
// link bound over the measured time (only with --link-mbps; > 1 means faster
// than fp32 could possibly be, i.e. compression paid off).
#include "averaging/averager.hpp"
#include "averaging/group_source.hpp"
#include "core/identity.hpp"
#include "core/inproc_transport.hpp"
#include "core/link_emulator.hpp"
#include "core/log.hpp"
#include "core/rpc.hpp"
#include "core/tcp_transport.hpp"

#include <CLI/CLI.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

using namespace apiary;
using namespace apiary::averaging;
using Clock = std::chrono::steady_clock;

namespace {

struct Context {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
  void start() {
    thread = std::thread([this] { io.run(); });
  }
  void stop() {
    work.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }
  ~Context() { stop(); }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_allreduce: butterfly all-reduce throughput"};
  std::size_t peers = 4;
  std::size_t size = 64u << 20;
  std::string compression = "none";
  std::string transport_kind = "tcp";
  double link_mbps = 0;
  double latency_ms = 0;
  int rounds = 5;
  std::size_t chunk_kib = 512;
  unsigned threads = 1;
  bool json = false;
  app.add_option("--peers", peers, "group size")->check(CLI::Range(2, 64));
  app.add_option("--size", size, "bytes of fp32 per peer");
  app.add_option("--compression", compression, "none|fp16|bf16|8bit");
  app.add_option("--transport", transport_kind, "tcp|inproc");
  app.add_option("--link-mbps", link_mbps, "emulated per-peer link, Mbit/s each way (0: none)");
  app.add_option("--latency-ms", latency_ms, "emulated one-way latency");
  app.add_option("--rounds", rounds, "measured rounds (after one warm-up)")
      ->check(CLI::PositiveNumber);
  app.add_option("--chunk-kib", chunk_kib, "chunk size in KiB of fp32");
  app.add_option("--threads", threads, "compute threads per peer");
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  log::init("warn");

  const auto codec = parse_codec(compression);
  if (!codec || (transport_kind != "tcp" && transport_kind != "inproc")) {
    std::fprintf(stderr, "bad --compression or --transport\n");
    return 2;
  }
  const std::size_t elements = size / sizeof(float);
  const bool emulate = link_mbps > 0 || latency_ms > 0;
  LinkProfile profile;
  profile.latency = std::chrono::microseconds(static_cast<long>(latency_ms * 1000));
  if (link_mbps > 0) profile.bandwidth_bytes_per_s = link_mbps * 1e6 / 8 / double(peers - 1);

  // Network contexts: one per peer over TCP, one shared for the in-process network.
  const bool tcp = transport_kind == "tcp";
  std::vector<std::unique_ptr<Context>> contexts(tcp ? peers : 1);
  for (auto& c : contexts) c = std::make_unique<Context>();
  std::shared_ptr<InprocNetwork> network;
  if (!tcp) network = InprocNetwork::create(contexts[0]->io.get_executor());

  std::vector<std::unique_ptr<rpc::RpcNode>> nodes;
  std::vector<std::vector<float>> tensors(peers);
  std::vector<GroupMember> members;
  for (std::size_t i = 0; i < peers; ++i) {
    auto& io = contexts[tcp ? i : 0]->io;
    TransportPtr transport = tcp ? make_tcp_transport(io.get_executor(), Identity::generate(), {})
                                 : network->create_transport(Identity::generate());
    if (emulate) {
      profile.seed = i + 1;
      transport = make_link_emulator(transport, profile);
    }
    nodes.push_back(std::make_unique<rpc::RpcNode>(transport));
    nodes.back()->start();
    members.push_back({nodes.back()->local_address(), 1.0f, 1.0, false});
    std::mt19937 rng(static_cast<unsigned>(i + 1));
    std::normal_distribution<float> dist(0.0f, 1.0f);
    tensors[i].resize(elements);
    for (auto& x : tensors[i]) x = dist(rng);
  }
  std::vector<std::unique_ptr<Averager>> averagers;
  for (std::size_t i = 0; i < peers; ++i) {
    AveragerOptions options;
    options.compute_threads = threads;
    options.allreduce.chunk_elements = chunk_kib * 1024 / sizeof(float);
    options.allreduce.compression.codec = *codec;
    options.allreduce.sender_timeout = std::chrono::seconds(60);
    options.allreduce.connect_timeout = std::chrono::seconds(10);
    averagers.push_back(std::make_unique<Averager>(
        *nodes[i], std::vector<std::span<float>>{tensors[i]},
        std::make_unique<StaticGroupSource>("bench", members, nodes[i]->peer_id()), options));
  }
  for (auto& c : contexts) c->start();

  std::vector<double> seconds;
  std::uint64_t wire_bytes = 0;
  std::size_t failures = 0;
  for (int round = 0; round <= rounds; ++round) {
    std::vector<StepResult> results(peers);
    const auto start = Clock::now();
    std::vector<std::thread> users;
    for (std::size_t i = 0; i < peers; ++i)
      users.emplace_back([&, i] {
        results[i] = averagers[i]->step(1.0f, Clock::now() + std::chrono::minutes(5));
      });
    for (auto& u : users) u.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    for (const auto& r : results) failures += r.failed_peers.size() + (r.chunks_local > 0 ? 1 : 0);
    if (round == 0) continue;  // warm-up: connections, allocations
    seconds.push_back(elapsed);
    for (const auto& r : results) wire_bytes += r.bytes_sent;
  }
  // Tear down in order: averagers, then the network threads, then the nodes.
  averagers.clear();
  for (auto& c : contexts) c->stop();
  nodes.clear();

  std::sort(seconds.begin(), seconds.end());
  const double p50 = seconds[seconds.size() / 2];
  const double n = double(peers);
  const double algbw = double(size) / p50 / 1e9;
  const double busbw = algbw * 2 * (n - 1) / n;
  const double wire_per_peer = double(wire_bytes) / double(rounds) / n;
  double bound_ratio = 0;
  if (link_mbps > 0) {
    const double bound = 2 * (n - 1) * double(size) / (n * link_mbps * 1e6 / 8);
    bound_ratio = bound / p50;
  }

  if (json) {
    nlohmann::json out{{"benchmark", "allreduce"},
                       {"peers", peers},
                       {"size_bytes", size},
                       {"compression", compression},
                       {"transport", transport_kind},
                       {"link_mbps", link_mbps},
                       {"latency_ms", latency_ms},
                       {"rounds", rounds},
                       {"seconds_p50", p50},
                       {"seconds_min", seconds.front()},
                       {"seconds_max", seconds.back()},
                       {"algbw_gbps", algbw},
                       {"busbw_gbps", busbw},
                       {"wire_bytes_per_peer", wire_per_peer},
                       {"bound_ratio", link_mbps > 0 ? nlohmann::json(bound_ratio) : nullptr},
                       {"failures", failures}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("butterfly all-reduce: %zu peers, %.1f MiB fp32 each, %s, %s", peers,
                double(size) / (1 << 20), compression.c_str(), transport_kind.c_str());
    if (link_mbps > 0) std::printf(", %.0f Mbit/s per peer", link_mbps);
    if (latency_ms > 0) std::printf(", %.1f ms latency", latency_ms);
    std::printf("\n%-22s %12s\n", "metric", "value");
    std::printf("%-22s %12.4f\n", "seconds p50", p50);
    std::printf("%-22s %12.4f\n", "seconds min", seconds.front());
    std::printf("%-22s %12.4f\n", "seconds max", seconds.back());
    std::printf("%-22s %12.4f\n", "algbw GB/s", algbw);
    std::printf("%-22s %12.4f\n", "busbw GB/s", busbw);
    std::printf("%-22s %12.0f\n", "wire bytes per peer", wire_per_peer);
    if (link_mbps > 0) std::printf("%-22s %12.3f\n", "bound ratio (fp32)", bound_ratio);
    std::printf("%-22s %12zu\n", "failures", failures);
  }
  return failures == 0 ? 0 : 1;
}
