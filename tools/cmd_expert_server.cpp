// `apiary expert-server`: hosts FFN experts named by a grid pattern, declares
// them in the DHT (re-declared every --update-period), batches requests from
// clients, and trains each expert on the backward passes it receives.
// Prints its address (apiary://<id>@<host>:<port>) as the first stdout line,
// then runs until SIGINT/SIGTERM, saving checkpoints (with --checkpoint-dir)
// before it exits. --trainers / --trainers-file restrict backward (training)
// to the listed peer ids; forward stays open.
#include "core/error.hpp"
#include "core/identity.hpp"
#include "core/log.hpp"
#include "core/memory_tuning.hpp"
#include "dht/node.hpp"
#include "dht/validator.hpp"
#include "experts/dht_directory.hpp"
#include "experts/expert_server.hpp"
#include "experts/expert_uid.hpp"
#include "experts/ffn_expert.hpp"
#include "kernels/device.hpp"
#include "net/address.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"
#include "tools/dashboard/metrics_endpoint.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace apiary::tools {
namespace {

struct ExpertServerCliOptions {
  std::vector<std::string> peers;
  std::string experts;
  std::size_t hidden = 1024;
  std::size_t inner = 0;  // 0: 4 × hidden
  std::string device = "cpu";
  std::string checkpoint_dir;
  std::string listen = "127.0.0.1:0";
  std::string identity_file;
  std::string token_file;
  double revocation_refresh = 30.0;
  std::string optimizer = "adam";
  std::string metrics;  // --metrics HOST:PORT
  std::vector<std::string> trainers;
  std::string trainers_file;
  float learning_rate = 1e-3f;
  std::size_t max_batch_size = 4096;
  std::size_t workers = 1;
  int update_period_s = 30;
  int checkpoint_interval_s = 60;
  std::uint64_t seed = 0;
};

experts::ExpertOptimizerConfig optimizer_config(const ExpertServerCliOptions& o) {
  experts::ExpertOptimizerConfig config;
  if (o.optimizer == "adam") {
    config.kind = experts::ExpertOptimizerConfig::Kind::adam;
    config.adam.lr = o.learning_rate;
  } else if (o.optimizer == "sgd") {
    config.kind = experts::ExpertOptimizerConfig::Kind::sgd;
    config.sgd.lr = o.learning_rate;
  } else if (o.optimizer == "none") {
    config.kind = experts::ExpertOptimizerConfig::Kind::none;
  } else {
    throw Error(Errc::invalid_argument, "--optimizer " + o.optimizer + ": expected adam|sgd|none");
  }
  return config;
}

PeerId parse_trainer(const std::string& text, const std::string& where) {
  auto peer = PeerId::parse(text);
  if (!peer)
    throw Error(Errc::invalid_argument, where + " " + text + ": expected a 40-hex-digit peer id");
  return *peer;
}

// The peer ids of --trainers and of --trainers-file (one a line, '#' comments).
std::vector<PeerId> trainer_ids(const ExpertServerCliOptions& o) {
  std::vector<PeerId> ids;
  for (const auto& text : o.trainers) ids.push_back(parse_trainer(text, "--trainers"));
  if (o.trainers_file.empty()) return ids;
  std::ifstream in(o.trainers_file);
  if (!in) throw Error(Errc::io_error, "--trainers-file " + o.trainers_file + ": cannot read it");
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find('#'));
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r");
    ids.push_back(parse_trainer(line.substr(first, last - first + 1),
                                "--trainers-file " + o.trainers_file + ":"));
  }
  if (ids.empty())
    throw Error(Errc::invalid_argument,
                "--trainers-file " + o.trainers_file + " lists no peer: nobody could train");
  return ids;
}

int run_expert_server(const ExpertServerCliOptions& o) {
  // Every batch frees and reallocates the same large tensor buffers: keep them mapped.
  tune_allocator_for_large_buffers();
  if (o.device != "cpu" && o.device != "cuda")
    throw Error(Errc::invalid_argument, "--device: expected cpu or cuda");
  const auto device = o.device == "cuda" ? kernels::Device::cuda : kernels::Device::cpu;
  if (device == kernels::Device::cuda && !kernels::cuda_available()) {
    std::fprintf(stderr, "apiary expert-server: --device cuda: no usable CUDA device (%s)\n",
                 kernels::cuda_status().c_str());
    return 2;
  }
  if (o.hidden == 0) throw Error(Errc::invalid_argument, "--hidden must be positive");
  const auto uids = experts::expand_pattern(o.experts);
  std::vector<PeerAddress> peers;
  for (const auto& p : o.peers) peers.push_back(PeerAddress::parse(p));

  const Identity identity = load_or_create_identity(o.identity_file);
  asio::io_context ctx;
  TransportOptions transport;
  std::shared_ptr<optimizer::Revocations> revocations;
  if (!o.token_file.empty()) {  // a permissioned run: members only, both ways
    auto membership = load_membership(o.token_file, identity);
    transport.own_token = std::move(membership.token);
    transport.admit = std::move(membership.admit);
    revocations = std::move(membership.revocations);
  }
  auto rpc = std::make_shared<rpc::RpcNode>(
      make_tcp_transport(ctx.get_executor(), identity, parse_listen(o.listen), transport));
  dht::DhtOptions dht_options;  // signs its expert entries as this server
  dht_options.validator = std::make_shared<dht::OwnerSignatureValidator>(identity);
  auto dht_node = dht::DhtNode::create(rpc, dht_options);
  // Token runs: revoked or expired members lose their connections.
  std::shared_ptr<optimizer::MembershipGuard> guard;
  if (revocations) {
    guard = std::make_shared<optimizer::MembershipGuard>(
        dht_node, revocations, membership_guard_options(o.revocation_refresh));
  }

  experts::ExpertServerOptions server_options;
  server_options.num_workers = o.workers;
  server_options.max_batch_rows = o.max_batch_size;
  if (!o.checkpoint_dir.empty()) server_options.checkpoint_dir = o.checkpoint_dir;
  server_options.checkpoint_interval = std::chrono::seconds(o.checkpoint_interval_s);
  server_options.trainers = trainer_ids(o);
  if (!server_options.trainers.empty())
    log::info("backward (training) only from {} permitted peer(s)", server_options.trainers.size());
  experts::ExpertServer server(*rpc, server_options);
  experts::BackendOptions backend_options;
  backend_options.max_batch_size = o.max_batch_size;
  backend_options.optimizer = optimizer_config(o);
  std::uint64_t seed = o.seed;
  for (const auto& uid : uids) {
    experts::FfnConfig config{o.hidden, o.inner ? o.inner : 4 * o.hidden, o.hidden, seed++};
    server.add_expert(std::make_shared<experts::ExpertBackend>(
        uid, std::make_unique<experts::FfnExpert>(config, device), backend_options));
  }
  server.start();
  rpc->start();
  const auto metrics_endpoint = serve_metrics(o.metrics);
  std::printf("%s\n", rpc->local_address().to_string().c_str());
  std::fflush(stdout);
  log::info("expert server {}: {} experts ({}), hidden {}, on {}", rpc->local_address().to_string(),
            uids.size(), o.experts, o.hidden,
            device == kernels::Device::cuda ? kernels::cuda_status() : "cpu");

  const auto period = std::chrono::seconds(std::max(o.update_period_s, 1));
  experts::ExpertDeclarer declarer(dht_node, uids, rpc->local_address(), period,
                                   2 * period + std::chrono::seconds(15));
  int exit_code = 0;
  auto shutdown = [&] {
    if (guard) guard->stop();
    declarer.stop();
    dht_node->stop();
    rpc->stop();
    ctx.stop();
  };
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        try {
          co_await dht_node->bootstrap(peers);
          declarer.start();
          if (guard) guard->start();
        } catch (const std::exception& e) {
          log::error("expert server: joining the DHT failed: {}", e.what());
          exit_code = 1;
          shutdown();
        }
      },
      asio::detached);
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int signal_number) {
    if (ec) return;
    log::info("signal {}: stopping", signal_number);
    shutdown();
  });
  ctx.run();
  server.stop();  // joins the workers and writes the final checkpoints
  return exit_code;
}

const Registration registration{
    "expert-server", 40, [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<ExpertServerCliOptions>();
      auto* cmd = app.add_subcommand(
          "expert-server",
          "Host mixture-of-experts FFN experts and declare them in the DHT (prints its address "
          "first)");
      cmd->add_option("--peers", o->peers,
                      "DHT peers to join (apiary://ID@HOST:PORT); none: "
                      "start a new DHT");
      cmd->add_option("--experts", o->experts, "grid pattern, e.g. 'ffn.[0:4].[0:8]'")->required();
      cmd->add_option("--hidden", o->hidden, "expert input/output width")->capture_default_str();
      cmd->add_option("--inner", o->inner, "FFN inner width (default 4 × hidden)");
      cmd->add_option("--device", o->device, "cpu|cuda")->capture_default_str();
      cmd->add_option("--checkpoint-dir", o->checkpoint_dir,
                      "resume experts from and save them to this folder");
      cmd->add_option("--listen", o->listen, "HOST:PORT (port 0: any free)")->capture_default_str();
      cmd->add_option("--identity", o->identity_file, "key file (default: ephemeral key)");
      cmd->add_option("--token", o->token_file,
                      "membership token of a permissioned run (with the --identity it names)");
      add_revocation_option(*cmd, o->revocation_refresh);
      cmd->add_option("--optimizer", o->optimizer, "adam|sgd|none")->capture_default_str();
      cmd->add_option("--lr", o->learning_rate, "expert learning rate")->capture_default_str();
      cmd->add_option("--max-batch-size", o->max_batch_size, "rows per request and batch")
          ->capture_default_str();
      cmd->add_option("--workers", o->workers, "compute threads")->capture_default_str();
      cmd->add_option("--update-period", o->update_period_s, "seconds between DHT declarations")
          ->capture_default_str();
      auto* interval = cmd->add_option("--checkpoint-interval", o->checkpoint_interval_s,
                                       "seconds between checkpoints")
                           ->capture_default_str();
      cmd->add_option("--seed", o->seed, "weight initialisation seed")->capture_default_str();
      cmd->add_option("--trainers", o->trainers,
                      "peer ids allowed to train the experts (backward), comma-separated; "
                      "others get permission_denied, forward stays open (default: anyone "
                      "admitted may train — in a --token run, the run's members)")
          ->delimiter(',');
      cmd->add_option("--trainers-file", o->trainers_file,
                      "file of peer ids allowed to train, one a line (with or instead of "
                      "--trainers)")
          ->check(CLI::ExistingFile);
      add_metrics_option(*cmd, o->metrics);
      return [o, interval] {
        if (interval->count() && o->checkpoint_dir.empty())
          throw UsageError(
              "--checkpoint-interval needs --checkpoint-dir (no checkpoints without it)");
        return run_expert_server(*o);
      };
    }};

}  // namespace
}  // namespace apiary::tools
