// `apiary ping ADDR`: dials a peer (handshake authenticates its id), then
// measures RPC round trips. Exit 1 with a clear message when the peer is
// unreachable or presents another id than the address names.
#include "core/identity.hpp"
#include "net/address.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"
#include "tools/command.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace apiary::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct PingOptions {
  std::string address;
  int count = 10;
  int timeout_ms = 5000;
  bool json = false;
};

struct PingResult {
  double handshake_ms = 0;
  std::vector<double> rtts_us;
};

double percentile(std::vector<double> sorted_values, double q) {
  if (sorted_values.empty()) return 0;
  const auto rank =
      static_cast<std::size_t>(q * static_cast<double>(sorted_values.size() - 1) + 0.5);
  return sorted_values[std::min(rank, sorted_values.size() - 1)];
}

asio::awaitable<PingResult> ping(rpc::RpcNode& node, PeerAddress to, PingOptions options) {
  PingResult result;
  const rpc::CallOptions call_options{std::chrono::milliseconds{options.timeout_ms}};
  const auto dial_start = Clock::now();
  co_await node.connect(to, call_options);
  result.handshake_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - dial_start).count();
  for (int i = 0; i < options.count; ++i) {
    Bytes payload(8);
    for (std::size_t b = 0; b < payload.size(); ++b)
      payload[b] = static_cast<std::uint8_t>(i >> (8 * b));
    const auto start = Clock::now();
    Bytes reply = co_await node.call(to, "ping", payload, call_options);
    result.rtts_us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    if (reply != payload) throw Error(Errc::bad_message, "ping reply does not echo the request");
  }
  co_return result;
}

int run_ping(const PingOptions& options) {
  const PeerAddress to = PeerAddress::parse(options.address);
  asio::io_context ctx;
  TransportOptions transport_options;
  transport_options.client_mode = true;
  transport_options.handshake_timeout = std::chrono::milliseconds{options.timeout_ms};
  rpc::RpcNode node(make_tcp_transport(ctx.get_executor(), Identity::generate(), TcpEndpoint{},
                                       transport_options));
  PingResult result;
  std::exception_ptr failure;
  asio::co_spawn(ctx, ping(node, to, options), [&](std::exception_ptr error, PingResult r) {
    failure = error;
    result = std::move(r);
    node.stop();
    ctx.stop();
  });
  ctx.run();
  if (failure) std::rethrow_exception(failure);

  std::vector<double> sorted = result.rtts_us;
  std::sort(sorted.begin(), sorted.end());
  const double p50 = percentile(sorted, 0.5);
  const double p99 = percentile(sorted, 0.99);
  if (options.json) {
    nlohmann::json out;
    out["address"] = to.to_string();
    out["handshake_ms"] = result.handshake_ms;
    out["count"] = sorted.size();
    out["rtt_p50_us"] = p50;
    out["rtt_p99_us"] = p99;
    out["rtt_min_us"] = sorted.empty() ? 0.0 : sorted.front();
    out["rtt_max_us"] = sorted.empty() ? 0.0 : sorted.back();
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("connected to %s: handshake %.2f ms\n", to.to_string().c_str(),
                result.handshake_ms);
    std::printf("%zu pings: rtt p50 %.0f us, p99 %.0f us (min %.0f, max %.0f)\n", sorted.size(),
                p50, p99, sorted.empty() ? 0.0 : sorted.front(),
                sorted.empty() ? 0.0 : sorted.back());
  }
  return 0;
}

const Registration registration{
    "ping", 21, [](CLI::App& app) -> std::function<int()> {
      auto options = std::make_shared<PingOptions>();
      auto* cmd = app.add_subcommand("ping", "Check that a peer is reachable and time round trips");
      cmd->add_option("address", options->address, "apiary://<peer-id>@<host>:<port>")->required();
      cmd->add_option("-n,--count", options->count, "number of pings")
          ->capture_default_str()
          ->check(CLI::Range(1, 1000000));
      cmd->add_option("--timeout-ms", options->timeout_ms, "deadline per dial and per ping")
          ->capture_default_str()
          ->check(CLI::Range(1, 600000));
      cmd->add_flag("--json", options->json, "print one JSON object");
      return [options] { return run_ping(*options); };
    }};

}  // namespace
}  // namespace apiary::tools
