// `apiary demo`: the main job on one machine. Starts a coordinator and N
// `apiary join` processes on loopback (CPU), relays the swarm's progress,
// waits until the peers reach the target accuracy (or the time limit), and
// writes a summary to OUT/summary.json.
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/subprocess.hpp"
#include "optimizer/run_config.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"
#include "tools/progress_printer.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

namespace apiary::tools {
namespace {

namespace fs = std::filesystem;

struct DemoOptions {
  int peers = 4;
  std::string config_file;
  std::string out_dir = "build/demo";
  double time_limit = 240;
  double target_accuracy = 0.85;
  std::uint32_t eval_every = 1;  // passed to every `apiary join`
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

// `apiary ARGS…` again (this executable), stderr to `log`, stdout piped or to `stdout_file`.
Subprocess spawn_apiary(const std::vector<std::string>& args, const fs::path& log,
                        const fs::path& stdout_file = {}) {
  return Subprocess::spawn("/proc/self/exe", args,
                           SpawnOptions{.stdout_file = stdout_file, .stderr_file = log});
}

// Starts the coordinator and returns it with the address it printed.
std::pair<Subprocess, std::string> start_coordinator(const fs::path& config_path,
                                                     const fs::path& out, double target_accuracy) {
  Subprocess coordinator = spawn_apiary(
      {"apiary", "coordinator", "--config", config_path.string(), "--listen", "127.0.0.1:0",
       "--status-period", "3", "--target-accuracy", std::to_string(target_accuracy)},
      out / "coordinator.log");
  char line[1024];
  if (!std::fgets(line, sizeof(line), coordinator.out())) {
    throw Error(Errc::unavailable,
                "the coordinator did not start (see " + (out / "coordinator.log").string() + ")");
  }
  std::string address(line);
  while (!address.empty() && (address.back() == '\n' || address.back() == '\r')) address.pop_back();
  return {std::move(coordinator), address};
}

std::vector<Subprocess> start_peers(const DemoOptions& o, const std::string& run,
                                    const std::string& address, const fs::path& out) {
  std::vector<Subprocess> peers;
  const double peer_limit = std::max(10.0, o.time_limit - 5);
  char limit_text[32];
  std::snprintf(limit_text, sizeof(limit_text), "%.0f", peer_limit);
  for (int i = 0; i < o.peers; ++i) {
    const std::string name = "peer" + std::to_string(i + 1);
    peers.push_back(
        spawn_apiary({"apiary", "join", "--peers", address, "--run", run, "--time-limit",
                      limit_text, "--eval-every", std::to_string(o.eval_every), "--summary",
                      (out / (name + ".json")).string()},
                     out / (name + ".log"), out / (name + ".out")));
  }
  return peers;
}

// Waits until every peer exited (stopping them at Ctrl-C or past the time
// limit); returns their exit codes.
std::vector<int> wait_for_peers(std::vector<Subprocess>& peers, double time_limit,
                                std::chrono::steady_clock::time_point started) {
  std::vector<bool> done(peers.size(), false);
  std::vector<int> codes(peers.size(), 0);
  std::size_t remaining = peers.size();
  while (remaining > 0) {
    for (std::size_t i = 0; i < peers.size(); ++i) {
      if (!done[i] && peers[i].exit_code()) {
        done[i] = true;
        codes[i] = *peers[i].exit_code();
        --remaining;
      }
    }
    if (stop_requested() || seconds_since(started) > time_limit + 60) {
      for (std::size_t i = 0; i < peers.size(); ++i)
        if (!done[i]) peers[i].signal(SIGTERM);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return codes;
}

// Writes OUT/summary.json over the peers' own summaries and prints it; returns
// the number of peers that failed.
int summarize(const DemoOptions& o, const optimizer::RunConfig& config, const fs::path& out,
              const std::vector<int>& codes, double seconds) {
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
  return failed;
}

// On a terminal the dashboard stays up after training, until Ctrl-C; a script
// (stdout not a terminal) gets the demo's exit as before.
void keep_dashboard_up(const ProgressPrinter& printer, std::mutex& url_mutex,
                       const std::string& dashboard_url) {
  std::string url;
  {
    std::lock_guard lock(url_mutex);
    url = dashboard_url;
  }
  if (!printer.live() || url.empty() || stop_requested()) return;
  std::printf("demo: training is over; the dashboard stays up at %s — Ctrl-C to end\n",
              url.c_str());
  std::fflush(stdout);
  while (!stop_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
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
      std::string(name_of(config.optimizer.name)).c_str(), 100 * config.target_accuracy,
      o.time_limit);
  std::printf("demo: logs in %s\n", out.c_str());
  std::fflush(stdout);

  const auto started = std::chrono::steady_clock::now();
  auto [coordinator, address] = start_coordinator(config_path, out, config.target_accuracy);
  std::printf("demo: coordinator at %s\n", address.c_str());
  std::vector<Subprocess> peers = start_peers(o, config.run, address, out);
  std::printf("demo: started %d peers; progress every 3 s from the coordinator:\n", o.peers);
  std::fflush(stdout);

  // Relay the coordinator's lines on a thread (fgets blocks): its progress as
  // one live line on a terminal, the dashboard's address as it comes.
  ProgressPrinter printer(stdout);
  std::string dashboard_url;
  std::mutex url_mutex;
  std::thread relay([&coordinator = coordinator, &printer, &dashboard_url, &url_mutex] {
    char buffer[1024];
    while (std::fgets(buffer, sizeof(buffer), coordinator.out())) {
      std::string line(buffer);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
      if (line.rfind("dashboard: ", 0) == 0) {
        std::lock_guard lock(url_mutex);
        dashboard_url = line.substr(11);
        printer.print_line("demo: watch the run at " + dashboard_url);
      } else if (line.rfind("[", 0) == 0) {
        printer.update("  " + line);
      } else {
        printer.print_line("  " + line);
      }
    }
  });
  const std::vector<int> codes = wait_for_peers(peers, o.time_limit, started);
  printer.finish();
  keep_dashboard_up(printer, url_mutex, dashboard_url);
  coordinator.signal(SIGTERM);
  coordinator.wait();
  relay.join();
  return summarize(o, config, out, codes, seconds_since(started)) == 0 ? 0 : 1;
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
      cmd->add_option("--eval-every", o->eval_every,
                      "peers evaluate every N epochs (0: only at the end)")
          ->capture_default_str();
      return [o] { return run_demo(*o); };
    }};

}  // namespace
}  // namespace apiary::tools
