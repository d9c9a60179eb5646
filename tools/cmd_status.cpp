// `apiary status`: a snapshot of a run — its configuration and every peer's
// latest progress report — read from the DHT by a short-lived client-mode node.
// Exit 1 when the run's configuration cannot be found (after printing what was).
#include "dht/runner.hpp"
#include "optimizer/progress_tracker.hpp"
#include "optimizer/run_directory.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"
#include "tools/dashboard/dashboard_view.hpp"
#include "tools/progress_printer.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

namespace apiary::tools {
namespace {

struct StatusOptions {
  std::vector<std::string> peers;
  std::string run;
  std::uint64_t target = 0;
  double live_seconds = 15;  // peers report about once a second
  bool json = false;
  std::string token_file;     // token runs: this client's membership
  std::string identity_file;  // the identity the token was issued for
  double watch_seconds = 0;   // > 0: refresh every so many seconds until Ctrl-C
};

struct Snapshot {
  std::optional<optimizer::RunConfig> config;
  std::string config_error;
  std::vector<optimizer::PeerProgress> reports;
  optimizer::GlobalProgress global;
};

bool is_stale(const optimizer::PeerProgress& r, double now, double live_seconds) {
  return !is_live(r, now, live_seconds);
}

// Live peers' throughput (stale reports would overstate it) and the time to the
// next epoch at that rate.
struct SwarmRate {
  double samples_per_second = 0;
  std::optional<double> eta_seconds;
};

SwarmRate swarm_rate(const StatusOptions& o, const Snapshot& snap, double now) {
  SwarmRate rate;
  rate.samples_per_second =
      swarm_point(snap.reports, snap.global, now, o.live_seconds).samples_per_second;
  const double target =
      static_cast<double>(o.target ? o.target : (snap.config ? snap.config->target_batch_size : 0));
  if (target > 0)
    rate.eta_seconds =
        seconds_to_next_epoch(target, snap.global.estimated_samples, rate.samples_per_second);
  return rate;
}

void print_json(const StatusOptions& o, const Snapshot& snap, double now, std::size_t stale) {
  const SwarmRate rate = swarm_rate(o, snap, now);
  nlohmann::json out{{"run", o.run},
                     {"global_epoch", snap.global.global_epoch},
                     {"peers", snap.reports.size()},  // every report, live or stale
                     {"live_peers", snap.reports.size() - stale},
                     {"stale_peers", stale},
                     {"live_seconds", o.live_seconds},
                     {"samples_per_s", rate.samples_per_second},
                     {"samples_this_epoch", snap.global.estimated_samples},
                     {"eta_next_epoch_s", rate.eta_seconds ? nlohmann::json(*rate.eta_seconds)
                                                           : nlohmann::json(nullptr)}};
  out["config"] =
      snap.config ? nlohmann::json::parse(snap.config->to_json()) : nlohmann::json(nullptr);
  if (!snap.config) out["config_error"] = snap.config_error;
  out["peer_reports"] = nlohmann::json::array();
  for (const auto& r : snap.reports) {
    out["peer_reports"].push_back({{"peer", r.peer},
                                   {"epoch", r.epoch},
                                   {"samples", r.samples_accumulated},
                                   {"samples_per_s", r.samples_per_second},
                                   {"loss", r.loss},
                                   {"test_accuracy", r.test_accuracy},
                                   {"age_s", now - r.report_time},
                                   {"stale", is_stale(r, now, o.live_seconds)},
                                   {"client_mode", r.client_mode}});
  }
  std::printf("%s\n", out.dump().c_str());
}

void print_table(const StatusOptions& o, const Snapshot& snap, double now, std::size_t stale) {
  std::printf("run %s: ", o.run.c_str());
  if (snap.config) {
    std::printf("target batch %llu, optimizer %s, averaging %s\n",
                static_cast<unsigned long long>(snap.config->target_batch_size),
                std::string(optimizer::name_of(snap.config->optimizer.name)).c_str(),
                std::string(optimizer::name_of(snap.config->averaging.mode)).c_str());
  } else {
    std::printf("configuration not found (%s)\n", snap.config_error.c_str());
  }
  const SwarmRate rate = swarm_rate(o, snap, now);
  std::printf(
      "global epoch %llu, %zu live peers, %zu stale (no report for %.0f s), %.0f samples/s, "
      "%.0f samples towards this epoch, next epoch in %s\n",
      static_cast<unsigned long long>(snap.global.global_epoch), snap.reports.size() - stale, stale,
      o.live_seconds, rate.samples_per_second, snap.global.estimated_samples,
      duration_text(rate.eta_seconds).c_str());
  std::printf("%-12s %6s %9s %10s %8s %8s %6s\n", "peer", "epoch", "samples", "samples/s", "loss",
              "test_acc", "age");
  for (const auto& r : snap.reports) {
    std::printf("%-12s %6llu %9llu %10.0f %8.4f %7.2f%% %5.0fs%s%s\n", r.peer.substr(0, 12).c_str(),
                static_cast<unsigned long long>(r.epoch),
                static_cast<unsigned long long>(r.samples_accumulated), r.samples_per_second,
                r.loss, 100 * r.test_accuracy, now - r.report_time,
                r.client_mode ? " (client)" : "",
                is_stale(r, now, o.live_seconds) ? " (stale)" : "");
  }
}

void print_snapshot(const StatusOptions& o, const Snapshot& snap, double now) {
  std::size_t stale = 0;
  for (const auto& r : snap.reports) stale += is_stale(r, now, o.live_seconds);
  if (o.json)
    print_json(o, snap, now, stale);
  else
    print_table(o, snap, now, stale);
}

// A client-mode node that may enter the run: with --token, it presents this
// identity's membership and checks the others' as members do.
std::unique_ptr<dht::DhtRunner> start_client(const StatusOptions& o, const Identity& identity,
                                             const std::vector<PeerAddress>& peers,
                                             std::vector<PeerId>& trusted) {
  TransportOptions transport;
  transport.client_mode = true;
  if (!o.token_file.empty()) {
    auto membership = load_membership(o.token_file, identity, o.run);
    transport.own_token = std::move(membership.token);
    transport.admit = std::move(membership.admit);
    trusted.push_back(membership.run_key.peer_id());
  }
  dht::DhtOptions options;
  options.client_mode = true;
  return std::make_unique<dht::DhtRunner>(
      [&identity, transport](asio::any_io_executor ex) {
        return make_tcp_transport(std::move(ex), identity, {"127.0.0.1", 0}, transport);
      },
      peers, options);
}

Snapshot fetch_snapshot(dht::DhtRunner& runner, const StatusOptions& o, const Identity& identity,
                        const std::vector<PeerId>& trusted) {
  return runner
      .run([&](dht::DhtNode& node) -> asio::awaitable<Snapshot> {
        Snapshot s;
        try {
          s.config = (co_await optimizer::fetch_run_config(node, o.run, trusted)).config;
        } catch (const Error& e) {
          s.config_error = e.what();
        }
        const std::uint64_t target =
            o.target ? o.target : (s.config ? s.config->target_batch_size : 1);
        optimizer::ProgressTracker tracker(node.shared_from_this(), identity.public_key(), o.run,
                                           target);
        s.global = co_await tracker.refresh(0);
        s.reports = tracker.last_reports();
        co_return s;
      })
      .get();
}

int run_status(const StatusOptions& o) {
  const auto peers = parse_peers(o.peers);
  if (peers.empty())
    throw Error(Errc::invalid_argument, "--peers: give at least one peer of the run");
  if (!o.identity_file.empty() && o.token_file.empty())
    throw UsageError("--identity: only a token run needs one (give --token too)");
  if (!o.token_file.empty() && o.identity_file.empty())
    throw UsageError("--token needs --identity: the key the token was issued for");
  const Identity identity =
      o.identity_file.empty() ? Identity::generate() : Identity::load(o.identity_file);
  std::vector<PeerId> trusted;
  for (const auto& p : peers) trusted.push_back(p.peer);
  install_stop_handler();
  auto runner = start_client(o, identity, peers, trusted);
  // --watch on a terminal: the table redrawn in place; otherwise one snapshot
  // (a JSON object per line with --json) per period.
  const bool redraw = o.watch_seconds > 0 && !o.json && isatty(STDOUT_FILENO) == 1;
  for (;;) {
    const Snapshot snap = fetch_snapshot(*runner, o, identity, trusted);
    if (redraw) std::printf("\033[H\033[2J");
    print_snapshot(o, snap, dht::system_dht_time());
    std::fflush(stdout);
    // What was found is printed either way; a run without its configuration is not a run.
    if (o.watch_seconds <= 0) return snap.config ? 0 : 1;
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(o.watch_seconds);
    while (!stop_requested() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (stop_requested()) return 0;
  }
}

const Registration registration{
    "status", 55, [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<StatusOptions>();
      auto* cmd =
          app.add_subcommand("status", "Show a run's configuration and every peer's progress");
      cmd->add_option("--peers", o->peers, "peers of the run")->required();
      cmd->add_option("--run", o->run, "run name")->required();
      cmd->add_option("--target", o->target, "target batch size (default: the run's)");
      cmd->add_option("--live-seconds", o->live_seconds,
                      "a peer whose last report is older is counted as stale")
          ->capture_default_str()
          ->check(CLI::PositiveNumber);
      cmd->add_flag("--json", o->json, "print one JSON object (per refresh with --watch)");
      cmd->add_option("--token", o->token_file,
                      "membership token file (runs with --auth token; needs --identity)");
      cmd->add_option("--identity", o->identity_file, "key file the --token was issued for")
          ->check(CLI::ExistingFile);
      cmd->add_option("--watch", o->watch_seconds,
                      "refresh every SECONDS until Ctrl-C (a table redrawn on a terminal)")
          ->check(CLI::PositiveNumber);
      return [o] { return run_status(*o); };
    }};

}  // namespace
}  // namespace apiary::tools
