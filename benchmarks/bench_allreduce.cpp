// bench_allreduce — how fast is butterfly all-reduce, and how close to the
// link bound does it get?
//
// N peers average S bytes of fp32 per peer with an Averager, `--rounds` times
// after one warm-up round. With --transport tcp every peer is its own process
// (this program re-executed with the hidden --worker flag) on an encrypted TCP
// loopback transport; the parent gathers each worker's per-round result as a
// JSON line over a pipe and starts every round at once ("go" on each worker's
// stdin), so a round's time is from the go to the last worker's answer. With
// --transport inproc the peers share one in-process network in this process.
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
// than fp32 could possibly be, i.e. compression paid off), cpu_seconds_per_round
// (user + system CPU of all worker processes during a measured round; tcp only).
#include "averaging/averager.hpp"
#include "averaging/group_source.hpp"
#include "core/clock.hpp"
#include "core/identity.hpp"
#include "core/log.hpp"
#include "core/memory_tuning.hpp"
#include "net/inproc_transport.hpp"
#include "net/link_emulator.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"

#include <CLI/CLI.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

extern char** environ;

using namespace apiary;
using namespace apiary::averaging;

namespace {

struct Config {
  std::size_t peers = 4;
  std::size_t size = 64u << 20;
  std::string compression = "none";
  std::string transport = "tcp";
  double link_mbps = 0;
  double latency_ms = 0;
  int rounds = 5;
  std::size_t chunk_kib = 512;
  unsigned threads = 1;
};

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

// What one peer reports for one round.
struct PeerRound {
  double seconds = 0;
  std::uint64_t bytes_sent = 0;
  std::size_t failures = 0;
  double cpu_seconds = 0;  // this process's CPU time during the round (tcp workers only)
};

double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

TransportPtr shaped(TransportPtr transport, const Config& config, std::size_t index) {
  if (config.link_mbps <= 0 && config.latency_ms <= 0) return transport;
  LinkProfile profile;
  profile.latency = std::chrono::microseconds(static_cast<long>(config.latency_ms * 1000));
  if (config.link_mbps > 0)
    profile.bandwidth_bytes_per_s = config.link_mbps * 1e6 / 8 / double(config.peers - 1);
  profile.seed = index + 1;
  return make_link_emulator(std::move(transport), profile);
}

std::vector<float> peer_tensor(std::size_t index, std::size_t elements) {
  std::mt19937 rng(static_cast<unsigned>(index + 1));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> tensor(elements);
  for (auto& x : tensor) x = dist(rng);
  return tensor;
}

std::unique_ptr<Averager> make_averager(rpc::RpcNode& node, std::vector<float>& tensor,
                                        const std::vector<GroupMember>& members,
                                        const Config& config) {
  AveragerOptions options;
  options.compute_threads = config.threads;
  options.allreduce.chunk_elements = config.chunk_kib * 1024 / sizeof(float);
  options.allreduce.compression.codec = *parse_codec(config.compression);
  options.allreduce.sender_timeout = std::chrono::seconds(60);
  options.allreduce.connect_timeout = std::chrono::seconds(10);
  return std::make_unique<Averager>(
      node, std::vector<std::span<float>>{tensor},
      std::make_unique<StaticGroupSource>("bench", members, node.peer_id()), options);
}

PeerRound summarize(const StepResult& r) {
  return {r.seconds, r.bytes_sent, r.failed_peers.size() + (r.chunks_local > 0 ? 1u : 0u)};
}

SteadyClock::time_point round_deadline() {
  return SteadyClock::now() + std::chrono::minutes(5);
}

// ---- in-process: all peers share one InprocNetwork ---------------------------

std::vector<std::vector<PeerRound>> run_inproc(const Config& config) {
  Context context;
  auto network = InprocNetwork::create(context.io.get_executor());
  std::vector<std::unique_ptr<rpc::RpcNode>> nodes;
  std::vector<std::vector<float>> tensors;
  std::vector<GroupMember> members;
  for (std::size_t i = 0; i < config.peers; ++i) {
    nodes.push_back(std::make_unique<rpc::RpcNode>(
        shaped(network->create_transport(Identity::generate()), config, i)));
    nodes.back()->start();
    members.push_back({nodes.back()->local_address(), 1.0f, 1.0, false});
    tensors.push_back(peer_tensor(i, config.size / sizeof(float)));
  }
  std::vector<std::unique_ptr<Averager>> averagers;
  for (std::size_t i = 0; i < config.peers; ++i)
    averagers.push_back(make_averager(*nodes[i], tensors[i], members, config));
  context.start();
  std::vector<std::vector<PeerRound>> rounds;
  for (int round = 0; round <= config.rounds; ++round) {
    std::vector<PeerRound> results(config.peers);
    std::vector<std::thread> users;
    for (std::size_t i = 0; i < config.peers; ++i)
      users.emplace_back(
          [&, i] { results[i] = summarize(averagers[i]->step(1.0f, round_deadline())); });
    for (auto& u : users) u.join();
    rounds.push_back(std::move(results));
  }
  averagers.clear();
  context.stop();
  nodes.clear();
  return rounds;
}

// ---- tcp: one worker process per peer ----------------------------------------

// Worker side. Protocol (lines): → "<own address>"; ← "<address> <address> …"
// (all members, group order); → "ready"; then per round ← "go", → JSON {seconds, bytes_sent,
// failures}; ← "quit" (or end of input) ends it.
int run_worker(const Config& config, std::size_t index) {
  // Freed 512 KiB chunk buffers stay in the process (as in `apiary join`), not page-faulted back.
  if (std::getenv("APIARY_BENCH_NO_MALLOPT") == nullptr) tune_allocator_for_large_buffers();
  Context context;
  rpc::RpcNode node(shaped(make_tcp_transport(context.io.get_executor(), Identity::generate(), {}),
                           config, index));
  node.start();
  context.start();
  std::cout << node.local_address().to_string() << std::endl;
  std::string line;
  if (!std::getline(std::cin, line)) return 2;
  std::vector<GroupMember> members;
  std::istringstream addresses(line);
  for (std::string text; addresses >> text;)
    members.push_back({PeerAddress::parse(text), 1.0f, 1.0, false});
  auto tensor = peer_tensor(index, config.size / sizeof(float));
  auto averager = make_averager(node, tensor, members, config);
  std::cout << "ready" << std::endl;  // the all-reduce service is registered
  while (std::getline(std::cin, line) && line == "go") {
    const double cpu_before = process_cpu_seconds();
    const PeerRound r = summarize(averager->step(1.0f, round_deadline()));
    const nlohmann::json out{{"seconds", r.seconds},
                             {"bytes_sent", r.bytes_sent},
                             {"failures", r.failures},
                             {"cpu_seconds", process_cpu_seconds() - cpu_before}};
    std::cout << out.dump() << std::endl;
  }
  averager.reset();
  context.stop();
  return 0;
}

// Parent side of one worker: its pid and both ends of its pipes.
class Worker {
 public:
  Worker(const std::vector<std::string>& args) {
    // Close-on-exec, so later workers do not inherit this worker's pipe ends
    // (its stdin would then never reach end-of-file).
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    to_ = ::fdopen(in[1], "w");
    from_ = ::fdopen(out[0], "r");
    if (rc != 0) throw std::runtime_error("cannot start worker " + args[0]);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() {
    if (to_) std::fclose(to_);
    if (from_) std::fclose(from_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  void send(const std::string& line) {
    std::fputs((line + "\n").c_str(), to_);
    std::fflush(to_);
  }
  std::string receive() {
    std::string line;
    for (int c; (c = std::fgetc(from_)) != EOF && c != '\n';) line.push_back(static_cast<char>(c));
    if (line.empty()) throw std::runtime_error("a worker process ended early");
    return line;
  }
  // Closes its stdin (it exits after the current round) and reaps it.
  int finish() {
    send("quit");
    std::fclose(to_);
    to_ = nullptr;
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  std::FILE* to_ = nullptr;
  std::FILE* from_ = nullptr;
};

std::vector<std::string> worker_args(const Config& config, std::size_t index) {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) throw std::runtime_error("cannot find this program (/proc/self/exe)");
  return {std::string(self, static_cast<std::size_t>(n)),
          "--peers",
          std::to_string(config.peers),
          "--size",
          std::to_string(config.size),
          "--compression",
          config.compression,
          "--link-mbps",
          std::to_string(config.link_mbps),
          "--latency-ms",
          std::to_string(config.latency_ms),
          "--chunk-kib",
          std::to_string(config.chunk_kib),
          "--threads",
          std::to_string(config.threads),
          "--worker",
          std::to_string(index)};
}

std::vector<std::vector<PeerRound>> run_processes(const Config& config,
                                                  std::vector<double>& wall_seconds) {
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::size_t i = 0; i < config.peers; ++i)
    workers.push_back(std::make_unique<Worker>(worker_args(config, i)));
  std::string members;
  for (auto& w : workers) members += w->receive() + " ";
  for (auto& w : workers) w->send(members);
  for (auto& w : workers)
    if (w->receive() != "ready") throw std::runtime_error("a worker did not get ready");
  std::vector<std::vector<PeerRound>> rounds;
  for (int round = 0; round <= config.rounds; ++round) {
    const auto start = SteadyClock::now();
    for (auto& w : workers) w->send("go");
    std::vector<PeerRound> results;
    for (auto& w : workers) {
      const auto j = nlohmann::json::parse(w->receive());
      results.push_back({j["seconds"].get<double>(), j["bytes_sent"].get<std::uint64_t>(),
                         j["failures"].get<std::size_t>(), j["cpu_seconds"].get<double>()});
    }
    wall_seconds.push_back(std::chrono::duration<double>(SteadyClock::now() - start).count());
    rounds.push_back(std::move(results));
  }
  int failed_exits = 0;
  for (auto& w : workers) failed_exits += w->finish() != 0;
  if (failed_exits > 0) std::fprintf(stderr, "%d worker(s) exited with an error\n", failed_exits);
  return rounds;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_allreduce: butterfly all-reduce throughput"};
  Config config;
  bool json = false;
  long worker = -1;
  app.add_option("--peers", config.peers, "group size")->check(CLI::Range(2, 64));
  app.add_option("--size", config.size, "bytes of fp32 per peer");
  app.add_option("--compression", config.compression, "none|fp16|bf16|8bit");
  app.add_option("--transport", config.transport, "tcp (one process per peer)|inproc");
  app.add_option("--link-mbps", config.link_mbps,
                 "emulated per-peer link, Mbit/s each way (0: none)");
  app.add_option("--latency-ms", config.latency_ms, "emulated one-way latency");
  app.add_option("--rounds", config.rounds, "measured rounds (after one warm-up)")
      ->check(CLI::PositiveNumber);
  app.add_option("--chunk-kib", config.chunk_kib, "chunk size in KiB of fp32");
  app.add_option("--threads", config.threads, "compute threads per peer");
  app.add_flag("--json", json, "print one JSON object");
  app.add_option("--worker", worker, "internal: run peer INDEX of a tcp benchmark")->group("");
  CLI11_PARSE(app, argc, argv);
  log::init(std::getenv("APIARY_LOG") != nullptr ? "" : "warn");  // APIARY_LOG=debug to trace

  if (!parse_codec(config.compression) ||
      (config.transport != "tcp" && config.transport != "inproc")) {
    std::fprintf(stderr, "bad --compression or --transport\n");
    return 2;
  }
  if (worker >= 0) return run_worker(config, static_cast<std::size_t>(worker));

  std::vector<double> seconds;
  std::vector<std::vector<PeerRound>> rounds;
  if (config.transport == "tcp") {
    rounds = run_processes(config, seconds);
  } else {
    rounds = run_inproc(config);
    for (const auto& r : rounds) {
      double longest = 0;
      for (const auto& p : r) longest = std::max(longest, p.seconds);
      seconds.push_back(longest);
    }
  }
  std::size_t failures = 0;
  std::uint64_t wire_bytes = 0;
  double cpu_seconds = 0;
  for (std::size_t round = 0; round < rounds.size(); ++round)
    for (const auto& p : rounds[round]) {
      failures += p.failures;
      if (round == 0) continue;  // the warm-up
      wire_bytes += p.bytes_sent;
      cpu_seconds += p.cpu_seconds;
    }
  seconds.erase(seconds.begin());
  std::sort(seconds.begin(), seconds.end());
  const double p50 = seconds[seconds.size() / 2];
  const double n = double(config.peers);
  const double algbw = double(config.size) / p50 / 1e9;
  const double busbw = algbw * 2 * (n - 1) / n;
  const double wire_per_peer = double(wire_bytes) / double(config.rounds) / n;
  double bound_ratio = 0;
  if (config.link_mbps > 0) {
    const double bound = 2 * (n - 1) * double(config.size) / (n * config.link_mbps * 1e6 / 8);
    bound_ratio = bound / p50;
  }
  const double cpu_per_round = cpu_seconds / double(config.rounds);

  if (json) {
    nlohmann::json out{
        {"benchmark", "allreduce"},
        {"peers", config.peers},
        {"size_bytes", config.size},
        {"compression", config.compression},
        {"transport", config.transport},
        {"processes", config.transport == "tcp" ? config.peers : 1},
        {"link_mbps", config.link_mbps},
        {"latency_ms", config.latency_ms},
        {"rounds", config.rounds},
        {"seconds_p50", p50},
        {"seconds_min", seconds.front()},
        {"seconds_max", seconds.back()},
        {"algbw_gbps", algbw},
        {"busbw_gbps", busbw},
        {"wire_bytes_per_peer", wire_per_peer},
        {"bound_ratio", config.link_mbps > 0 ? nlohmann::json(bound_ratio) : nullptr},
        {"cpu_seconds_per_round",
         config.transport == "tcp" ? nlohmann::json(cpu_per_round) : nullptr},
        {"failures", failures}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("butterfly all-reduce: %zu peers, %.1f MiB fp32 each, %s, %s", config.peers,
                double(config.size) / (1 << 20), config.compression.c_str(),
                config.transport == "tcp" ? "tcp (one process per peer)" : "inproc");
    if (config.link_mbps > 0) std::printf(", %.0f Mbit/s per peer", config.link_mbps);
    if (config.latency_ms > 0) std::printf(", %.1f ms latency", config.latency_ms);
    std::printf("\n%-22s %12s\n", "metric", "value");
    std::printf("%-22s %12.4f\n", "seconds p50", p50);
    std::printf("%-22s %12.4f\n", "seconds min", seconds.front());
    std::printf("%-22s %12.4f\n", "seconds max", seconds.back());
    std::printf("%-22s %12.4f\n", "algbw GB/s", algbw);
    std::printf("%-22s %12.4f\n", "busbw GB/s", busbw);
    std::printf("%-22s %12.0f\n", "wire bytes per peer", wire_per_peer);
    if (config.link_mbps > 0) std::printf("%-22s %12.3f\n", "bound ratio (fp32)", bound_ratio);
    if (config.transport == "tcp") std::printf("%-22s %12.3f\n", "CPU s per round", cpu_per_round);
    std::printf("%-22s %12zu\n", "failures", failures);
  }
  return failures == 0 ? 0 : 1;
}
