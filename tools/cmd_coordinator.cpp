// `apiary coordinator`: starts a collaboration. A DHT bootstrap peer that
// publishes the run configuration signed with the run key, prints the line to
// paste into `apiary join` (and for a mixture-of-experts run the
// `apiary expert-server` lines that serve its experts), prints the swarm's
// progress, and keeps checkpoints by downloading the state from peers.
// `apiary coordinator token` issues membership tokens for runs with --auth token;
// `apiary coordinator revoke` revokes them (tools/token_revoke.hpp). A token
// run's coordinator keeps the revocation list current and republished
// (optimizer/membership_guard.hpp).
#include "core/clock.hpp"
#include "core/log.hpp"
#include "dht/runner.hpp"
#include "dht/validator.hpp"
#include "optimizer/membership.hpp"
#include "optimizer/model_factory.hpp"
#include "optimizer/network_swarm.hpp"
#include "optimizer/progress_tracker.hpp"
#include "optimizer/run_directory.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"
#include "tools/coordinator_checkpoints.hpp"
#include "tools/dashboard/dashboard_server.hpp"
#include "tools/dashboard/metrics_endpoint.hpp"
#include "tools/expert_server_lines.hpp"
#include "tools/token_revoke.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

namespace apiary::tools {
namespace {

struct CoordinatorOptions {
  std::string run;
  std::string config_file;
  std::string listen = "127.0.0.1:0";
  std::string identity_file;
  std::string checkpoint_dir;
  std::uint32_t checkpoint_every = 5;
  std::string auth = "open";
  double status_period = 2.0;
  double config_ttl = 3600.0;
  std::size_t expert_servers = 1;  // moe-mlp runs: how many expert-server lines to print
  bool expert_servers_given = false;
  bool json = false;
  std::string dashboard = "127.0.0.1:0";  // "off": none
  std::string metrics;
  double target_accuracy = -1;  // for the dashboard's ETA (-1: none)
  double revocation_refresh = 30.0;
};

struct TokenOptions {
  std::string run;
  std::string peer;
  std::string identity_file;
  double ttl_hours = 24.0;
  std::string out;
};

using optimizer::unix_seconds;

int run_token(const TokenOptions& o) {
  if (o.identity_file.empty())
    throw Error(Errc::invalid_argument, "--identity: the run key file is required");
  const Identity run_key = Identity::load(o.identity_file);
  auto peer = PeerId::parse(o.peer);
  if (!peer)
    throw Error(Errc::invalid_argument, "--for " + o.peer + ": expected a 40-hex-digit peer id");
  const auto expiration = unix_seconds() + static_cast<std::uint64_t>(o.ttl_hours * 3600);
  optimizer::TokenFile file{optimizer::issue_token(run_key, o.run, *peer, expiration),
                            run_key.public_key()};
  if (!o.out.empty()) {
    optimizer::save_token(o.out, file);
    std::printf("wrote token for %s (run %s, valid %.1f h) to %s\n", peer->to_string().c_str(),
                o.run.c_str(), o.ttl_hours, o.out.c_str());
  } else {
    std::printf("%s\n%s\n", to_hex(file.token.encode()).c_str(),
                to_hex(file.run_key.bytes).c_str());
  }
  return 0;
}

struct SwarmView {
  optimizer::GlobalProgress global;
  std::size_t peers = 0;
  double samples_per_second = 0;
  double loss = -1;
  double test_accuracy = -1;
  std::vector<optimizer::PeerProgress> reports;
};

SwarmView summarize(const std::vector<optimizer::PeerProgress>& reports,
                    const optimizer::GlobalProgress& g) {
  SwarmView v;
  v.global = g;
  v.peers = reports.size();
  v.samples_per_second = g.total_samples_per_second;
  v.reports = reports;
  double loss_sum = 0;
  int loss_n = 0;
  for (const auto& r : reports) {
    if (r.loss >= 0) {
      loss_sum += r.loss;
      ++loss_n;
    }
    v.test_accuracy = std::max(v.test_accuracy, r.test_accuracy);
  }
  if (loss_n) v.loss = loss_sum / loss_n;
  return v;
}

// The coordinator's address and the command lines that join the run (and serve
// a moe-mlp run's experts), as text and, with --json, one object.
void print_join_instructions(const CoordinatorOptions& o, const optimizer::RunConfig& config,
                             const PeerAddress& address, const std::string& dashboard_url) {
  const bool token_run = o.auth == "token";
  // An external model is trained by its own script (apiary.torch), not by `apiary join`.
  const std::string join_line =
      config.model.type == "external"
          ? "apiary.torch.Optimizer(torch_optimizer, run=\"" + config.run + "\", peers=[\"" +
                address.to_string() + "\"])  # in the run's training script"
          : "apiary join --peers " + address.to_string() + " --run " + config.run +
                (token_run ? " --identity KEYFILE --token TOKENFILE" : "");
  // A moe-mlp run trains only once its experts are served: print those lines too.
  const auto server_lines =
      expert_server_lines(config.model, address.to_string(), o.expert_servers, token_run);
  std::printf("%s\n", address.to_string().c_str());
  if (!server_lines.empty()) {
    std::printf("run '%s' needs its experts served. Start the expert servers with:\n",
                config.run.c_str());
    for (const auto& line : server_lines) std::printf("  %s\n", line.c_str());
  }
  std::printf("run '%s' is open. Join it with:\n  %s\n", config.run.c_str(), join_line.c_str());
  if (token_run) {
    std::printf(
        "issue tokens (for peers%s) with:\n  apiary coordinator token --run %s --identity %s "
        "--for PEER_ID --out TOKENFILE\n"
        "revoke a member with:\n  apiary coordinator revoke --run %s --identity %s --peer "
        "PEER_ID --peers %s\n",
        server_lines.empty() ? "" : " and expert servers", config.run.c_str(),
        o.identity_file.c_str(), config.run.c_str(), o.identity_file.c_str(),
        address.to_string().c_str());
  }
  if (!dashboard_url.empty()) std::printf("dashboard: %s\n", dashboard_url.c_str());
  if (o.json) {
    std::printf("%s\n", nlohmann::json{{"address", address.to_string()},
                                       {"run", config.run},
                                       {"join", join_line},
                                       {"expert_servers", server_lines},
                                       {"dashboard", dashboard_url}}
                            .dump()
                            .c_str());
  }
}

// The swarm's progress as the coordinator's tracker sees it now.
SwarmView fetch_swarm_view(dht::DhtRunner& runner, const Identity& run_key,
                           const optimizer::RunConfig& config) {
  return runner
      .run([&](dht::DhtNode& node) -> asio::awaitable<SwarmView> {
        optimizer::ProgressTracker tracker(node.shared_from_this(), run_key.public_key(),
                                           config.run, config.target_batch_size);
        auto g = co_await tracker.refresh(0);
        co_return summarize(tracker.last_reports(), g);
      })
      .get();
}

// One status line (or JSON object) per period.
void print_status(const SwarmView& view, double seconds, bool json) {
  if (json) {
    std::printf("%s\n", nlohmann::json{{"seconds", seconds},
                                       {"epoch", view.global.global_epoch},
                                       {"peers", view.peers},
                                       {"samples_per_s", view.samples_per_second},
                                       {"loss", view.loss},
                                       {"test_accuracy", view.test_accuracy}}
                            .dump()
                            .c_str());
  } else {
    std::printf("[%6.0fs] epoch %4llu | %zu peers | %8.0f samples/s | loss %s | test acc %s\n",
                seconds, static_cast<unsigned long long>(view.global.global_epoch), view.peers,
                view.samples_per_second,
                view.loss < 0 ? "  -   " : std::to_string(view.loss).substr(0, 6).c_str(),
                view.test_accuracy < 0
                    ? "  -  "
                    : (std::to_string(100 * view.test_accuracy).substr(0, 5) + "%").c_str());
  }
}

// Stores the signed run configuration in the DHT; a failure is logged (the
// next republish retries).
void publish_config(dht::DhtRunner& runner, const Identity& run_key,
                    const optimizer::RunConfig& config, double ttl_seconds) {
  auto result =
      runner
          .run([&](dht::DhtNode& node) {
            return optimizer::publish_run_config(node, run_key.public_key(), config, ttl_seconds);
          })
          .get();
  if (!result.ok()) log::warn("publishing the run configuration failed: {}", result.reason());
}

// Parameters of the run's model, when this build can construct it here
// (Fashion-MNIST's 784 inputs and 10 classes, the data set runs train on).
std::optional<std::uint64_t> model_parameters(const optimizer::RunConfig& config) {
  if (optimizer::needs_expert_dht(config.model)) return std::nullopt;
  try {
    return optimizer::build_model(config.model, 784, 10)->parameters().total_size();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The dashboard's view (its history in the checkpoint directory, when there is
// one, so that a restarted coordinator keeps its charts).
std::shared_ptr<DashboardView> make_dashboard_view(const CoordinatorOptions& o,
                                                   const optimizer::RunConfig& config,
                                                   const PeerAddress& address) {
  DashboardRun run{config, address.to_string(), model_parameters(config), std::nullopt};
  if (o.target_accuracy >= 0) run.target_accuracy = o.target_accuracy;
  std::filesystem::path history_file;
  if (!o.checkpoint_dir.empty()) {
    // Disk trouble never stops the coordinator (as for its checkpoints): the
    // history then lives in memory only.
    std::error_code ec;
    std::filesystem::create_directories(o.checkpoint_dir, ec);
    if (ec)
      log::warn("dashboard history: {}: {} (kept in memory only)", o.checkpoint_dir, ec.message());
    else
      history_file = std::filesystem::path(o.checkpoint_dir) / "history.jsonl";
  }
  return std::make_shared<DashboardView>(std::move(run), RunHistory(2048, history_file));
}

// The run's configuration (--run renames it), after the option checks.
optimizer::RunConfig load_config(const CoordinatorOptions& o) {
  auto config = optimizer::RunConfig::load_file(o.config_file);
  if (!o.run.empty() && o.run != config.run) {
    log::info("run name '{}' from --run overrides '{}' in {}", o.run, config.run, o.config_file);
    config.run = o.run;
    config.validate();
  }
  if (o.expert_servers_given && expert_server_lines(config.model, "", 1, false).empty())
    throw UsageError("--expert-servers: this run has no expert grid (only moe-mlp runs do)");
  if (o.auth != "open" && o.auth != "token")
    throw Error(Errc::invalid_argument, "--auth must be open or token");
  if (o.auth == "token" && o.identity_file.empty()) {
    throw Error(Errc::invalid_argument,
                "--auth token needs --identity FILE: the run key signs the tokens");
  }
  return config;
}

// Token runs: keeps the run's revocation list current on the coordinator's node
// (closing revoked and expired members' connections) and republished with the
// run key. Null for an open run.
std::shared_ptr<optimizer::MembershipGuard> start_membership_guard(
    dht::DhtRunner& runner, const Identity& run_key,
    std::shared_ptr<optimizer::Revocations> revocations, double refresh_seconds) {
  if (!revocations) return nullptr;
  auto options = membership_guard_options(refresh_seconds);
  options.republish_as = run_key;
  return runner
      .run([&](dht::DhtNode& node) -> asio::awaitable<std::shared_ptr<optimizer::MembershipGuard>> {
        auto guard = std::make_shared<optimizer::MembershipGuard>(node.shared_from_this(),
                                                                  revocations, options);
        guard->start();
        co_return guard;
      })
      .get();
}

// A token run: the coordinator's own token (a year) and the members-only
// check, which refuses the peers of the returned revocation set.
std::shared_ptr<optimizer::Revocations> admit_members_only(TransportOptions& transport,
                                                           const Identity& run_key,
                                                           const std::string& run) {
  transport.own_token =
      optimizer::issue_token(run_key, run, run_key.peer_id(), unix_seconds() + 365ull * 24 * 3600)
          .encode();
  auto revocations = std::make_shared<optimizer::Revocations>(run_key.public_key(), run);
  transport.admit = optimizer::make_admit_check(run_key.public_key(), run, {}, revocations);
  return revocations;
}

int run_coordinator(CoordinatorOptions o) {
  install_stop_handler();
  const auto config = load_config(o);
  const Identity run_key = load_or_create_identity(o.identity_file);
  TransportOptions transport;
  std::shared_ptr<optimizer::Revocations> revocations;
  if (o.auth == "token") revocations = admit_members_only(transport, run_key, config.run);
  dht::DhtOptions dht_options;
  dht_options.validator = std::make_shared<dht::OwnerSignatureValidator>(run_key);
  dht::DhtRunner runner(
      [&](asio::any_io_executor ex) {
        return make_tcp_transport(std::move(ex), run_key, parse_listen(o.listen), transport);
      },
      {}, dht_options);
  const PeerAddress address = runner.address();

  auto publish = [&] { publish_config(runner, run_key, config, o.config_ttl); };
  publish();
  const auto guard = start_membership_guard(runner, run_key, revocations, o.revocation_refresh);

  const auto metrics_endpoint = serve_metrics(o.metrics);
  const auto dashboard_view = make_dashboard_view(o, config, address);
  std::unique_ptr<HttpEndpoint> dashboard;
  if (o.dashboard != "off") dashboard = serve_dashboard(o.dashboard, dashboard_view);
  print_join_instructions(o, config, address, dashboard ? dashboard->url() + "/" : "");
  std::fflush(stdout);

  std::optional<CoordinatorCheckpoints> checkpoints;
  if (!o.checkpoint_dir.empty())
    checkpoints.emplace(runner, o.checkpoint_dir, config.run, config.to_json(), o.checkpoint_every);

  const auto started = std::chrono::steady_clock::now();
  auto last_publish = started;
  std::size_t last_peer_count = 0;
  while (!stop_requested()) {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.status_period));
    if (stop_requested()) break;
    SwarmView view;
    try {
      view = fetch_swarm_view(runner, run_key, config);
    } catch (const std::exception& e) {
      log::warn("progress fetch failed: {}", e.what());
      continue;
    }
    // Republish when the swarm changes (new nodes are now the nearest to the
    // key, so the configuration outlives this coordinator) and periodically.
    if (view.peers != last_peer_count || std::chrono::steady_clock::now() - last_publish >
                                             std::chrono::duration<double>(o.config_ttl / 4)) {
      publish();
      last_publish = std::chrono::steady_clock::now();
      last_peer_count = view.peers;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    dashboard_view->update(view.reports, view.global, wall_seconds());
    print_status(view, seconds, o.json);
    std::fflush(stdout);
    if (checkpoints) checkpoints->on_progress(view.global.global_epoch);
  }
  if (checkpoints) checkpoints->save_now();
  if (guard)
    runner
        .run([&](dht::DhtNode&) -> asio::awaitable<void> {
          guard->stop();
          co_return;
        })
        .get();
  log::info("coordinator stopped; peers keep training without it");
  return 0;
}

const Registration registration{
    "coordinator", 45, [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<CoordinatorOptions>();
      auto t = std::make_shared<TokenOptions>();
      auto* cmd = app.add_subcommand(
          "coordinator",
          "Start a collaboration: bootstrap peer, run configuration, progress, checkpoints");
      cmd->add_option("--run", o->run, "run name (default: the configuration's)");
      auto* config_opt = cmd->add_option("--config", o->config_file, "run configuration (JSON)")
                             ->check(CLI::ExistingFile);
      cmd->add_option("--listen", o->listen, "HOST:PORT to accept peers on")->capture_default_str();
      cmd->add_option("--identity", o->identity_file, "run key file (created if missing)");
      cmd->add_option("--checkpoint-dir", o->checkpoint_dir,
                      "keep checkpoints of the swarm's state here");
      auto* every =
          cmd->add_option("--checkpoint-every", o->checkpoint_every, "epochs between checkpoints")
              ->capture_default_str();
      cmd->add_option("--auth", o->auth, "open | token (peers need a token signed by the run key)")
          ->capture_default_str()
          ->check(CLI::IsMember({"open", "token"}));
      cmd->add_option("--status-period", o->status_period, "seconds between progress lines")
          ->capture_default_str();
      auto* servers =
          cmd->add_option("--expert-servers", o->expert_servers,
                          "moe-mlp runs: print this many `apiary expert-server` lines, the expert "
                          "grid's first dimension split between them")
              ->capture_default_str()
              ->check(CLI::PositiveNumber);
      cmd->add_option("--dashboard", o->dashboard,
                      "serve the run's dashboard at http://HOST:PORT/ (port 0: any free one; "
                      "off: none)")
          ->capture_default_str();
      cmd->add_option("--target-accuracy", o->target_accuracy,
                      "test accuracy the dashboard estimates the time to (e.g. 0.85)")
          ->check(CLI::Range(0.0, 1.0));
      add_metrics_option(*cmd, o->metrics);
      add_revocation_option(*cmd, o->revocation_refresh);
      cmd->add_flag("--json", o->json,
                    "the join and expert-server lines, then progress, as one JSON object per line");

      auto* token = cmd->add_subcommand(
          "token", "Issue a membership token for a peer (runs with --auth token)");
      token->add_option("--run", t->run, "run name")->required();
      token->add_option("--for", t->peer, "peer id the token is for (apiary keygen prints it)")
          ->required();
      token
          ->add_option("--identity", t->identity_file,
                       "run key file (the coordinator's --identity)")
          ->required();
      token->add_option("--ttl-hours", t->ttl_hours, "validity")->capture_default_str();
      token->add_option("--out", t->out, "write the token file here (default: print it)");
      auto r = std::make_shared<RevokeOptions>();
      auto* revoke = add_revoke_command(*cmd, *r);
      cmd->require_subcommand(0, 1);
      return [o, t, r, token, revoke, config_opt, every, servers] {
        if (token->parsed()) return run_token(*t);
        if (revoke->parsed()) return run_revoke(*r);
        if (config_opt->count() == 0)
          throw Error(Errc::invalid_argument, "--config FILE is required");
        if (every->count() && o->checkpoint_dir.empty())
          throw UsageError("--checkpoint-every needs --checkpoint-dir (no checkpoints without it)");
        o->expert_servers_given = servers->count() > 0;
        return run_coordinator(*o);
      };
    }};

}  // namespace
}  // namespace apiary::tools
