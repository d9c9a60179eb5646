// `apiary demo`: the main job on one machine. Starts a coordinator and N
// `apiary join` processes on loopback (CPU), relays the swarm's progress,
// waits until the peers reach the target accuracy (or the time limit), and
// writes a summary to OUT/summary.json.
#include "core/error.hpp"
#include "core/log.hpp"
#include "optimizer/run_config.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

extern char** environ;

namespace apiary::tools {
namespace {

namespace fs = std::filesystem;

struct DemoOptions {
  int peers = 4;
  std::string config_file;
  std::string out_dir = "build/demo";
  double time_limit = 240;
  double target_accuracy = 0.85;
};

constexpr const char* kDemoConfig = R"({
  "run": "fashion-demo",
  "model": {"type": "mlp", "hidden": [256, 128], "activation": "relu", "seed": 1},
  "target_batch_size": 1024,
  "batch_size": 64,
  "optimizer": {"name": "adam", "lr": 0.003, "lr_decay_per_epoch": 0.995},
  "averaging": {"mode": "target_batch", "average_state_every": 10, "target_group_size": 16,
                "min_group_size": 2, "matchmaking_time": 1.0, "averaging_timeout": 10.0},
  "compression": {"gradients": "none", "state": "none"},
  "max_epochs": 400
})";

// A child process whose stdout goes to a pipe (or a file) and stderr to a log file.
struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;  // read end of the stdout pipe, when piped

  ~Child() {
    if (out) std::fclose(out);
  }
};

Child spawn(const std::vector<std::string>& args, const fs::path& stderr_log, bool pipe_stdout,
            const fs::path& stdout_file = {}) {
  int fds[2] = {-1, -1};
  if (pipe_stdout && pipe(fds) != 0) throw Error(Errc::io_error, "pipe() failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (pipe_stdout) {
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Child child;
  const int rc = posix_spawn(&child.pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (pipe_stdout) {
    close(fds[1]);
    if (rc == 0)
      child.out = fdopen(fds[0], "r");
    else
      close(fds[0]);
  }
  if (rc != 0) throw Error(Errc::io_error, "cannot start " + args[1]);
  return child;
}

bool exited(pid_t pid, int* status) {
  return waitpid(pid, status, WNOHANG) == pid;
}

int run_demo(const DemoOptions& o) {
  install_stop_handler();
  if (o.peers < 2 || o.peers > 16)
    throw Error(Errc::invalid_argument, "--peers must be in [2, 16]");
  fs::create_directories(o.out_dir);
  const fs::path out(o.out_dir);
  // The run configuration: the built-in demo run unless --config names one.
  optimizer::RunConfig config = o.config_file.empty()
                                    ? optimizer::RunConfig::parse_json(kDemoConfig)
                                    : optimizer::RunConfig::load_file(o.config_file);
  config.target_accuracy = o.target_accuracy;
  const fs::path config_path = out / "run.json";
  std::ofstream(config_path) << config.to_json() << '\n';

  std::printf(
      "demo: a coordinator and %d peers train an MLP on Fashion-MNIST together on this machine\n",
      o.peers);
  std::printf(
      "demo: run '%s', target batch %llu samples, %s, target test accuracy %.0f%%, time limit %.0f "
      "s\n",
      config.run.c_str(), static_cast<unsigned long long>(config.target_batch_size),
      config.optimizer.name.c_str(), 100 * config.target_accuracy, o.time_limit);
  std::printf("demo: logs in %s\n", out.c_str());
  std::fflush(stdout);

  const auto started = std::chrono::steady_clock::now();
  Child coordinator = spawn({"apiary", "coordinator", "--config", config_path.string(), "--listen",
                             "127.0.0.1:0", "--status-period", "3"},
                            out / "coordinator.log", /*pipe_stdout=*/true);
  char line[1024];
  if (!std::fgets(line, sizeof(line), coordinator.out)) {
    kill(coordinator.pid, SIGTERM);
    throw Error(Errc::unavailable,
                "the coordinator did not start (see " + (out / "coordinator.log").string() + ")");
  }
  std::string address(line);
  while (!address.empty() && (address.back() == '\n' || address.back() == '\r')) address.pop_back();
  std::printf("demo: coordinator at %s\n", address.c_str());

  std::vector<Child> peers;
  const double peer_limit = std::max(10.0, o.time_limit - 5);
  char limit_text[32];
  std::snprintf(limit_text, sizeof(limit_text), "%.0f", peer_limit);
  for (int i = 0; i < o.peers; ++i) {
    const std::string name = "peer" + std::to_string(i + 1);
    peers.push_back(
        spawn({"apiary", "join", "--peers", address, "--run", config.run, "--time-limit",
               limit_text, "--summary", (out / (name + ".json")).string()},
              out / (name + ".log"), /*pipe_stdout=*/false, out / (name + ".out")));
  }
  std::printf("demo: started %d peers; progress every 3 s from the coordinator:\n", o.peers);
  std::fflush(stdout);

  // Relay the coordinator's progress lines on a thread (fgets blocks).
  std::thread relay([&] {
    char buffer[1024];
    while (std::fgets(buffer, sizeof(buffer), coordinator.out)) {
      std::printf("  %s", buffer);
      std::fflush(stdout);
    }
  });

  std::vector<bool> done(peers.size(), false);
  std::vector<int> codes(peers.size(), 0);
  std::size_t remaining = peers.size();
  while (remaining > 0) {
    for (std::size_t i = 0; i < peers.size(); ++i) {
      int status = 0;
      if (!done[i] && exited(peers[i].pid, &status)) {
        done[i] = true;
        codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        --remaining;
      }
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (stop_requested() || elapsed > o.time_limit + 60) {
      for (std::size_t i = 0; i < peers.size(); ++i)
        if (!done[i]) kill(peers[i].pid, SIGTERM);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  kill(coordinator.pid, SIGTERM);
  int coordinator_status = 0;
  waitpid(coordinator.pid, &coordinator_status, 0);
  relay.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  // Summary over the peers' own summaries.
  nlohmann::json summary{{"run", config.run}, {"peers", o.peers}, {"seconds", seconds}};
  double best_accuracy = 0, total_rate = 0;
  std::uint64_t epochs = 0, averaged = 0, local = 0;
  int failed = 0;
  bool reached = false, time_limit = false;
  summary["peer_summaries"] = nlohmann::json::array();
  for (int i = 0; i < o.peers; ++i) {
    std::ifstream in(out / ("peer" + std::to_string(i + 1) + ".json"));
    if (!in || codes[i] != 0) {
      ++failed;
      continue;
    }
    auto s = nlohmann::json::parse(in, nullptr, false);
    if (s.is_discarded()) {
      ++failed;
      continue;
    }
    best_accuracy = std::max(best_accuracy, s.value("test_accuracy", 0.0));
    epochs = std::max<std::uint64_t>(epochs, s.value("epochs", 0ull));
    total_rate += s.value("samples_per_s", 0.0);
    averaged += s.value("averaged_rounds", 0ull);
    local += s.value("local_rounds", 0ull);
    reached = reached || s.value("reached_target_accuracy", false);
    time_limit = time_limit || s.value("hit_time_limit", false);
    summary["peer_summaries"].push_back(s);
  }
  summary["test_accuracy"] = best_accuracy;
  summary["epochs"] = epochs;
  summary["samples_per_s"] = total_rate;
  summary["averaged_rounds"] = averaged;
  summary["local_rounds"] = local;
  summary["failed_peers"] = failed;
  summary["reached_target_accuracy"] = reached;
  summary["target_accuracy"] = config.target_accuracy;
  std::ofstream(out / "summary.json") << summary.dump(2) << '\n';

  std::printf(
      "\ndemo summary: %d peers, %llu epochs, test accuracy %.2f%% (target %.0f%%: %s), %.0f "
      "samples/s "
      "in total, %.0f s\n",
      o.peers, static_cast<unsigned long long>(epochs), 100 * best_accuracy,
      100 * config.target_accuracy,
      reached ? "reached" : (time_limit ? "NOT reached, stopped at the time limit" : "not reached"),
      total_rate, seconds);
  std::printf(
      "demo: %llu rounds averaged across peers, %llu proceeded locally; summary written to %s\n",
      static_cast<unsigned long long>(averaged), static_cast<unsigned long long>(local),
      (out / "summary.json").c_str());
  if (failed) std::printf("demo: %d peer(s) failed; see their logs in %s\n", failed, out.c_str());
  return failed == 0 ? 0 : 1;
}

const Registration registration{
    "demo", 70, [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<DemoOptions>();
      auto* cmd = app.add_subcommand(
          "demo", "Run a local collaboration: a coordinator and N peers on loopback");
      cmd->add_option("--peers", o->peers, "number of `apiary join` processes")
          ->capture_default_str();
      cmd->add_option("--config", o->config_file,
                      "run configuration (default: the built-in demo run)");
      cmd->add_option("--out", o->out_dir, "folder for logs and summary.json")
          ->capture_default_str();
      cmd->add_option("--time-limit", o->time_limit, "seconds before the peers stop")
          ->capture_default_str();
      cmd->add_option("--target-accuracy", o->target_accuracy,
                      "test accuracy at which the peers stop")
          ->capture_default_str();
      return [o] { return run_demo(*o); };
    }};

}  // namespace
}  // namespace apiary::tools
