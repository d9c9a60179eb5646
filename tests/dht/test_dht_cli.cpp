// Integration: 8 `apiary dht` processes on loopback, records put and got
// through the CLI. Every process is ended by the test, also on failure.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#ifndef APIARY_BIN
#error "APIARY_BIN must name the apiary binary"
#endif

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      std::string bin = APIARY_BIN;
      argv.push_back(bin.data());
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Next stdout line, or nullopt at EOF / after `timeout`.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      const auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(out_, chunk, sizeof(chunk));
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // All remaining stdout, then the exit code (-1 on timeout: the child is killed).
  int wait_exit(std::chrono::milliseconds timeout, std::string* output = nullptr) {
    while (auto line = read_line(timeout)) {
      if (output) *output += *line + "\n";
    }
    if (output) *output += buffer_;
    const auto deadline = Clock::now() + timeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        exited_ = true;
        return -1;
      }
      usleep(10000);
    }
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void signal(int sig) { kill(pid_, sig); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

}  // namespace

TEST(DhtCli, EightProcessesPutAndGetThroughTheCli) {
  std::vector<std::unique_ptr<Child>> nodes;
  std::vector<std::string> addresses;
  for (int i = 0; i < 8; ++i) {
    std::vector<std::string> args{"dht", "--listen", "127.0.0.1:0", "--status-interval", "0.5"};
    if (i > 0) {
      args.push_back("--peers");
      args.push_back(addresses[0]);
      if (i > 1) args.push_back(addresses[i - 1]);
    }
    nodes.push_back(std::make_unique<Child>(args));
    auto line = nodes.back()->read_line(15s);
    ASSERT_TRUE(line.has_value()) << "node " << i << " printed no address";
    ASSERT_EQ(line->rfind("apiary://", 0), 0u) << *line;
    addresses.push_back(*line);
  }
  // A status line follows the address.
  auto status = nodes[0]->read_line(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_NE(status->find("routing_table="), std::string::npos) << *status;

  std::string out;
  Child put({"dht", "put", "cli-key", "hello-swarm", "--ttl", "120", "--peers", addresses[3]});
  ASSERT_EQ(put.wait_exit(30s, &out), 0) << out;
  EXPECT_NE(out.find("stored"), std::string::npos) << out;

  out.clear();
  Child get({"dht", "get", "cli-key", "--json", "--peers", addresses[6]});
  ASSERT_EQ(get.wait_exit(30s, &out), 0) << out;
  const auto json = nlohmann::json::parse(out);
  EXPECT_TRUE(json.at("found").get<bool>());
  EXPECT_EQ(json.at("value").get<std::string>(), "hello-swarm");

  // Dictionary records through the CLI.
  for (const char* who : {"alice", "bob"}) {
    Child sub({"dht", "put", "cli-group", std::string("ready-") + who, "--subkey", who, "--ttl",
               "120", "--peers", addresses[1]});
    ASSERT_EQ(sub.wait_exit(30s), 0);
  }
  out.clear();
  Child dict({"dht", "get", "cli-group", "--latest", "--json", "--peers", addresses[5]});
  ASSERT_EQ(dict.wait_exit(30s, &out), 0) << out;
  const auto dict_json = nlohmann::json::parse(out);
  EXPECT_EQ(dict_json.at("type").get<std::string>(), "dictionary");
  EXPECT_EQ(dict_json.at("entries").size(), 2u);

  out.clear();
  Child missing({"dht", "get", "no-such-key", "--json", "--peers", addresses[2]});
  EXPECT_EQ(missing.wait_exit(30s, &out), 2) << out;

  // Bootstrap against nobody fails clearly.
  Child lonely({"dht", "get", "x", "--peers",
                "apiary://0000000000000000000000000000000000000000@127.0.0.1:1"});
  EXPECT_EQ(lonely.wait_exit(60s), 1);

  for (auto& node : nodes) node->signal(SIGTERM);
  for (auto& node : nodes) EXPECT_EQ(node->wait_exit(15s), 0);
}
