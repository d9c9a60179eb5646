// `apiary node`: a bare peer on the encrypted transport that answers "ping".
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
};

int run_node(const NodeOptions& options) {
  const TcpEndpoint endpoint = parse_listen(options.listen);
  const Identity identity = load_or_create_identity(options.identity_file);
  asio::io_context ctx;
  rpc::RpcNode node(make_tcp_transport(ctx.get_executor(), identity, endpoint));
  node.add_method("ping", [](const rpc::RequestContext&, Bytes payload) -> asio::awaitable<Bytes> {
    co_return payload;
  });
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
      return [options] { return run_node(*options); };
    }};

}  // namespace
}  // namespace apiary::tools
