#pragma once
// Tools of the attack tests: the hand-driven peer of tests/net/raw_peer.hpp
// (stalled frames, keepalives, silent sockets), a network thread to run them
// on, an honest `apiary ping`, and readers of a process's memory and
// descriptors in /proc.
#include "tests/integration/process.hpp"
#include "tests/net/raw_peer.hpp"

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <nlohmann/json.hpp>

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace apiary::test {

// One network thread for the attackers; run() waits for a coroutine (bounded).
class NetworkThread {
 public:
  NetworkThread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~NetworkThread() {
    work_.reset();
    io_.stop();
    thread_.join();
  }
  asio::any_io_executor executor() { return io_.get_executor(); }
  template <typename T>
  T run(awaitable<T> task, std::chrono::seconds limit = std::chrono::seconds{20}) {
    auto future = asio::co_spawn(io_, std::move(task), asio::use_future);
    if (future.wait_for(limit) != std::future_status::ready)
      throw std::runtime_error("attack coroutine did not finish in time");
    return future.get();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// `count` attackers, each authenticated with a fresh identity, announcing a
// frame of the largest size (16 MiB) and sending 1 KiB of it; they hold their
// connections until destroyed.
inline std::vector<std::unique_ptr<RawPeer>> stalled_frame_attackers(NetworkThread& net,
                                                                     const PeerAddress& to,
                                                                     std::size_t count) {
  std::vector<std::unique_ptr<RawPeer>> attackers;
  for (std::size_t i = 0; i < count; ++i) {
    auto peer = std::make_unique<RawPeer>(net.executor());
    net.run([&]() -> asio::awaitable<void> {
      co_await peer->connect(to);
      Bytes start = RawPeer::frame_header((16u << 20) + frame_tag_size);
      start.resize(start.size() + 1024, 0x5a);
      co_await peer->write(start);
    }());
    attackers.push_back(std::move(peer));
  }
  return attackers;
}

// The address a started `apiary node` / `apiary dht` prints as its first line.
inline PeerAddress printed_address(ChildProcess& process) {
  auto line = process.read_line(std::chrono::seconds{20});
  if (!line) throw std::runtime_error("the apiary process printed no address");
  return PeerAddress::parse(*line);
}

// An honest `apiary ping` (binary: the apiary executable) of `to`: its JSON
// report, or nullopt when it failed.
inline std::optional<nlohmann::json> honest_ping(const std::string& binary, const PeerAddress& to,
                                                 int count = 20) {
  using namespace std::chrono_literals;
  ChildProcess ping({binary, "ping", to.to_string(), "-n", std::to_string(count), "--json",
                     "--timeout-ms", "3000"});
  auto line = ping.read_line(20s);
  if (ping.wait(20s) != 0 || !line) return std::nullopt;
  return nlohmann::json::parse(*line);
}

// Resident memory of process `pid` in bytes (VmRSS in /proc/<pid>/status).
inline std::size_t resident_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  throw std::runtime_error("no VmRSS for process " + std::to_string(pid));
}

// CPU time (user + system) process `pid` has used, in seconds (/proc/<pid>/stat).
inline double cpu_seconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after its ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos)
    throw std::runtime_error("no stat for process " + std::to_string(pid));
  std::istringstream fields(text.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;  // state … cmajflt
  double user_ticks = 0;
  double system_ticks = 0;
  fields >> user_ticks >> system_ticks;
  return (user_ticks + system_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Open file descriptors of process `pid`.
inline std::size_t open_descriptors(pid_t pid) {
  std::size_t count = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    (void)entry;
    ++count;
  }
  return count;
}

}  // namespace apiary::test
