// `apiary join`: joins a training run. Fetches the run configuration from the
// DHT, builds the model, trains with the swarm (progress on stderr every
// second), keeps training when the coordinator goes away, and prints a final
// summary (JSON with --json). With --checkpoint-dir it resumes from its newest
// valid checkpoint and writes one periodically and on exit (SIGINT/SIGTERM end
// the current step first).
#include "core/log.hpp"
#include "core/memory_tuning.hpp"
#include "optimizer/membership.hpp"
#include "optimizer/network_swarm.hpp"
#include "optimizer/run_directory.hpp"
#include "optimizer/state_checkpoints.hpp"
#include "optimizer/trainer.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"
#include "tools/dashboard/metrics_endpoint.hpp"
#include "tools/dashboard/training_metrics.hpp"
#include "tools/progress_printer.hpp"
#include "tools/training_report.hpp"

#include <nlohmann/json.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

namespace apiary::tools {
namespace {

// 1+2+…+5 half-seconds: ~7 s of retries before a missing configuration is an error.
constexpr int kConfigFetchAttempts = 6;

struct JoinOptions {
  std::vector<std::string> peers;
  std::string run;
  std::string device = "cpu";
  std::string metrics;  // --metrics HOST:PORT
  std::uint32_t batch_size = 0;
  std::string data_dir;
  bool client_mode = false;
  std::string token_file;
  double revocation_refresh = 30.0;
  std::string identity_file;
  std::string listen = "127.0.0.1:0";
  std::string run_key_hex;
  std::uint32_t max_epochs = 0;
  double time_limit = 0;
  std::uint32_t eval_every = 1;
  double step_delay = 0;
  std::string summary_file;
  std::string checkpoint_dir;
  std::uint32_t checkpoint_every = 5;
  bool json = false;
  bool quiet = false;
};

nlohmann::json join_summary(const optimizer::TrainerSummary& summary, const std::string& run,
                            const PeerId& self) {
  auto out = summary_json(summary);
  out["run"] = run;
  out["peer"] = self.to_string();
  return out;
}

// The DHT bootstrap says only that no peer answered. Dial them once more to
// tell a refused membership token (the common mistake in a token run) from
// peers that are down; throws Error{permission_denied} with a hint if refused.
void explain_refusal(const Identity& identity, const std::vector<PeerAddress>& peers,
                     const TransportOptions& options, const JoinOptions& o) {
  asio::io_context io;
  auto transport = make_tcp_transport(io.get_executor(), identity, {"127.0.0.1", 0}, options);
  std::string refusal;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (const auto& peer : peers) {
          try {
            auto connection = co_await transport->connect(peer);
            connection->close();
          } catch (const Error& e) {
            log::debug("{}", e.what());
            if (e.code() == Errc::permission_denied) {
              refusal = e.what();
              break;
            }
          }
        }
        transport->close();
      },
      asio::detached);
  io.run();  // bounded by the handshake timeout per peer
  if (refusal.empty()) return;
  std::string hint;
  if (!o.token_file.empty()) {
    hint = "the token in " + o.token_file + " is not valid for run '" + o.run +
           "' on this swarm (issued for another run or by another run key, or expired)";
  } else {
    hint = "run '" + o.run + "' admits only members: ask its coordinator for a token (apiary " +
           "coordinator token --run " + o.run + " --for " +
           (o.identity_file.empty() ? std::string("PEER_ID") : identity.peer_id().to_string()) +
           ") and pass --identity KEYFILE --token TOKENFILE" +
           (o.identity_file.empty() ? " (apiary keygen --out KEYFILE prints PEER_ID)" : "");
  }
  throw Error(Errc::permission_denied, "not admitted to the run: " + refusal + "; " + hint);
}

// The run's configuration, fetched through a temporary client-mode DHT node
// (retrying not_found for a while: a swarm that just lost its coordinator, or a
// busy one, may need a few lookups before the replicas answer).
optimizer::FetchedRunConfig fetch_config(
    const JoinOptions& o, const Identity& identity, const std::vector<PeerAddress>& peers,
    const Bytes& token, const std::function<bool(const PublicKey&, ByteSpan)>& admit,
    const std::vector<PeerId>& trusted) {
  dht::DhtOptions probe_options;
  probe_options.client_mode = true;
  TransportOptions probe_transport;
  probe_transport.client_mode = true;
  probe_transport.own_token = token;
  probe_transport.admit = admit;
  std::optional<dht::DhtRunner> probe;
  try {
    probe.emplace(
        [&](asio::any_io_executor ex) {
          return make_tcp_transport(std::move(ex), identity, {"127.0.0.1", 0}, probe_transport);
        },
        peers, probe_options);
  } catch (const Error& e) {
    if (e.code() != Errc::unavailable) throw;
    explain_refusal(identity, peers, probe_transport, o);
    throw;
  }
  return optimizer::fetch_run_config_retrying(*probe, o.run, trusted, kConfigFetchAttempts);
}

optimizer::TrainerOptions trainer_options(const JoinOptions& o, const optimizer::RunConfig& config,
                                          const Identity& identity,
                                          optimizer::NetworkSwarm& swarm) {
  optimizer::TrainerOptions trainer;
  trainer.config = config;
  trainer.data_dir = o.data_dir;
  trainer.batch_size = o.batch_size;
  trainer.max_epochs = o.max_epochs;
  trainer.time_limit_seconds = o.time_limit;
  trainer.eval_every_epochs = o.eval_every;
  trainer.client_mode = o.client_mode;
  trainer.step_delay_seconds = o.step_delay;
  trainer.expert_dht = &swarm.dht();  // remote experts (moe-mlp) are found in the run's DHT
  trainer.stop = &stop_requested();
  std::uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) seed = seed << 8 | identity.peer_id().bytes[i];
  trainer.data_seed = seed;  // every peer sees its own order of the data
  // One live line on a terminal, a line per status otherwise.
  auto printer = std::make_shared<ProgressPrinter>(stderr);
  trainer.on_status = [quiet = o.quiet, printer,
                       target = config.target_batch_size](const optimizer::TrainerStatus& s) {
    record_training_status(s);
    if (!quiet) printer->update(progress_line(s, target));
  };
  return trainer;
}

int run_join(const JoinOptions& o) {
  install_stop_handler();
  // Every round frees and reallocates the same large tensor buffers: keep them mapped.
  tune_allocator_for_large_buffers();
  // The swarm trainer computes on the CPU whatever the device: accepting cuda would pretend.
  if (o.device == "cuda")
    throw UsageError(
        "--device cuda: swarm training runs on the CPU only for now (use --device cpu)");
  const auto peers = parse_peers(o.peers);
  if (peers.empty())
    throw Error(Errc::invalid_argument, "--peers: give at least one peer of the run");
  const Identity identity = load_or_create_identity(o.identity_file);
  const auto metrics_endpoint = serve_metrics(o.metrics);

  optimizer::NetworkSwarmOptions swarm_options;
  swarm_options.identity = identity;
  swarm_options.listen = parse_listen(o.listen);
  swarm_options.client_mode = o.client_mode;
  swarm_options.initial_peers = peers;
  std::vector<PeerId> trusted;
  if (!o.token_file.empty()) {
    auto membership = load_membership(o.token_file, identity, o.run);
    swarm_options.token = std::move(membership.token);
    swarm_options.admit = std::move(membership.admit);
    swarm_options.revocations = std::move(membership.revocations);
    swarm_options.membership = membership_guard_options(o.revocation_refresh);
    trusted.push_back(membership.run_key.peer_id());
  }
  if (!o.run_key_hex.empty()) {
    auto id = PeerId::parse(o.run_key_hex);
    if (!id)
      throw Error(Errc::invalid_argument,
                  "--run-key: expected the 40-hex-digit peer id of the run key");
    trusted.push_back(*id);
  }
  for (const auto& p : peers) trusted.push_back(p.peer);

  log::info("joining run '{}' through {} peer(s)", o.run, peers.size());
  const optimizer::FetchedRunConfig fetched =
      fetch_config(o, identity, peers, swarm_options.token, swarm_options.admit, trusted);
  const optimizer::RunConfig& config = fetched.config;
  log::info(
      "run '{}': MLP {} hidden, {} lr {}, target batch {} samples, averaging {} ({} compression)",
      config.run, config.model.hidden.size(), optimizer::name_of(config.optimizer.name),
      config.optimizer.lr, config.target_batch_size, optimizer::name_of(config.averaging.mode),
      optimizer::name_of(config.compression.gradients));

  swarm_options.config = config;
  auto swarm = std::make_shared<optimizer::NetworkSwarm>(swarm_options);
  if (!o.quiet) std::fprintf(stderr, "joined as %s\n", swarm->address().to_string().c_str());

  optimizer::TrainerOptions trainer = trainer_options(o, config, identity, *swarm);
  // Checkpoints: resume from the newest valid one, write one every
  // --checkpoint-every epochs and on every clean exit (SIGINT/SIGTERM included).
  std::optional<optimizer::StateCheckpoints> checkpoints;
  std::uint64_t next_checkpoint_epoch = 0;
  if (!o.checkpoint_dir.empty()) {
    checkpoints.emplace(o.checkpoint_dir, config.run, config.to_json());
    trainer.initial_state = checkpoints->load_latest();
    if (!trainer.initial_state) log::info("no checkpoint to resume from in {}", o.checkpoint_dir);
    next_checkpoint_epoch =
        checkpoints->last_epoch() + std::max<std::uint32_t>(o.checkpoint_every, 1);
    trainer.on_epoch_end = [&](const optimizer::CollaborativeOptimizer& optimizer) {
      if (optimizer.epoch() < next_checkpoint_epoch) return;
      // A failed write is retried at the next period, not at every epoch.
      next_checkpoint_epoch = optimizer.epoch() + std::max<std::uint32_t>(o.checkpoint_every, 1);
      checkpoints->save(optimizer.snapshot());
    };
  }
  const auto summary = optimizer::run_training(swarm, trainer);
  trainer.on_status = nullptr;  // ends the live progress line before the summary
  if (checkpoints && (summary.final_state.epoch > 0 || summary.last.local_samples > 0)) {
    checkpoints->save(summary.final_state);
  }
  const auto out = join_summary(summary, o.run, identity.peer_id());
  if (!o.summary_file.empty()) {
    std::ofstream(o.summary_file) << out.dump(2) << '\n';
  }
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s\n", finished_line(summary, stop_requested()).c_str());
  }
  return 0;
}

const Registration registration{
    "join", 50, [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<JoinOptions>();
      auto* cmd =
          app.add_subcommand("join", "Join a training run (prints progress, then a summary)");
      cmd->add_option("--peers", o->peers, "peers of the run, as printed by `apiary coordinator`")
          ->required();
      cmd->add_option("--run", o->run, "run name")->required();
      cmd->add_option("--device", o->device,
                      "cpu (cuda is refused: swarm training runs on the CPU)")
          ->capture_default_str()
          ->check(CLI::IsMember({"cpu", "cuda"}));
      cmd->add_option("--batch-size", o->batch_size, "samples per local step (default: the run's)");
      cmd->add_option("--data", o->data_dir, "Fashion-MNIST directory (default: the run's)");
      cmd->add_flag("--client-mode", o->client_mode, "do not accept connections (behind NAT)");
      cmd->add_option("--token", o->token_file, "membership token file (runs with --auth token)");
      add_revocation_option(*cmd, o->revocation_refresh);
      cmd->add_option("--identity", o->identity_file,
                      "key file (created if missing; default: ephemeral)");
      cmd->add_option("--listen", o->listen, "HOST:PORT to accept peers on")->capture_default_str();
      cmd->add_option("--run-key", o->run_key_hex,
                      "peer id of the run key to trust (default: the --peers)");
      cmd->add_option("--max-epochs", o->max_epochs, "stop after this epoch (default: the run's)");
      cmd->add_option("--time-limit", o->time_limit, "stop after this many seconds");
      cmd->add_option("--eval-every", o->eval_every,
                      "evaluate on the test set every N epochs (0: only at the end)")
          ->capture_default_str();
      cmd->add_option("--step-delay", o->step_delay,
                      "seconds to sleep per step (simulates a slow peer)");
      cmd->add_option("--summary", o->summary_file, "write the final summary as JSON to this file");
      cmd->add_option("--checkpoint-dir", o->checkpoint_dir,
                      "keep checkpoints here and resume from the newest valid one");
      auto* every = cmd->add_option("--checkpoint-every", o->checkpoint_every,
                                    "epochs between checkpoints (one is also written on exit)")
                        ->capture_default_str()
                        ->check(CLI::PositiveNumber);
      cmd->add_flag("--json", o->json, "print the final summary as one JSON object");
      cmd->add_flag("--quiet", o->quiet, "no progress lines");
      add_metrics_option(*cmd, o->metrics);
      return [o, every] {
        if (every->count() && o->checkpoint_dir.empty())
          throw UsageError("--checkpoint-every needs --checkpoint-dir (no checkpoints without it)");
        return run_join(*o);
      };
    }};

}  // namespace
}  // namespace apiary::tools
