// `apiary node`: a bare peer on the encrypted transport that answers "ping"
// (as every RpcNode does) and nothing else.
// Prints its address (apiary://<id>@<host>:<port>) as the first stdout line and
// runs until SIGINT/SIGTERM. Used by `make demo` and the integration tests.
#include "core/identity.hpp"
#include "core/log.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"
#include "tools/cli_common.hpp"
#include "tools/command.hpp"

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

namespace apiary::tools {
namespace {

struct NodeOptions {
  std::string listen = "127.0.0.1:0";
  std::string identity_file;
  // 0: the defaults of net/ (the attack tests shorten them).
  long idle_timeout_ms = 0;
  long frame_timeout_ms = 0;
};

int run_node(const NodeOptions& options) {
  const TcpEndpoint endpoint = parse_listen(options.listen);
  const Identity identity = load_or_create_identity(options.identity_file);
  asio::io_context ctx;
  TransportOptions transport_options;
  rpc::RpcOptions rpc_options;
  if (options.frame_timeout_ms > 0)
    transport_options.frame_body_timeout = std::chrono::milliseconds{options.frame_timeout_ms};
  if (options.idle_timeout_ms > 0)
    rpc_options.idle_timeout = std::chrono::milliseconds{options.idle_timeout_ms};
  rpc::RpcNode node(make_tcp_transport(ctx.get_executor(), identity, endpoint, transport_options),
                    rpc_options);
  node.start();
  std::printf("%s\n", node.local_address().to_string().c_str());
  std::fflush(stdout);
  log::info("node {} listening", node.local_address().to_string());

  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int signal_number) {
    if (ec) return;
    log::info("signal {}: stopping", signal_number);
    node.stop();
    ctx.stop();
  });
  ctx.run();
  return 0;
}

const Registration registration{
    "node", 20, [](CLI::App& app) -> std::function<int()> {
      auto options = std::make_shared<NodeOptions>();
      auto* cmd = app.add_subcommand(
          "node", "Run a bare peer that answers pings (prints its address first)");
      cmd->add_option("--listen", options->listen, "HOST:PORT to listen on (port 0: any free)")
          ->capture_default_str();
      cmd->add_option("--identity", options->identity_file,
                      "key file (created with mode 0600 if missing; default: ephemeral key)");
      cmd->add_option("--idle-timeout-ms", options->idle_timeout_ms,
                      "close connections that did no work (pings do not count) this long")
          ->check(CLI::PositiveNumber);
      cmd->add_option("--frame-timeout-ms", options->frame_timeout_ms,
                      "close a connection whose frame body does not follow its header in time")
          ->check(CLI::PositiveNumber);
      return [options] { return run_node(*options); };
    }};

}  // namespace
}  // namespace apiary::tools
