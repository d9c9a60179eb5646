// RpcNode over the encrypted TCP transport on loopback: many concurrent calls
// and a 1 GiB stream whose memory stays bounded by the flow-control window.
#include "core/identity.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"
#include "tests/net/test_rpc_util.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using test::bytes_of;
using test::run;
using test::string_of;

// A /proc/self/status field in KiB (VmRSS, VmHWM).
long status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

std::unique_ptr<rpc::RpcNode> tcp_node(asio::io_context& ctx, rpc::RpcOptions options = {}) {
  auto transport = make_tcp_transport(ctx.get_executor(), Identity::generate(), TcpEndpoint{});
  auto node = std::make_unique<rpc::RpcNode>(transport, options);
  node->start();
  return node;
}

TEST(RpcTcp, TenThousandConcurrentCallsOverEightConnections) {
  asio::io_context ctx;
  auto server = tcp_node(ctx);
  server->add_method(
      "echo", [](const rpc::RequestContext&, Bytes r) -> asio::awaitable<Bytes> { co_return r; });
  std::vector<std::unique_ptr<rpc::RpcNode>> clients;
  for (int i = 0; i < 8; ++i) clients.push_back(tcp_node(ctx));
  auto all = [](std::vector<std::unique_ptr<rpc::RpcNode>>& clients,
                PeerAddress to) -> asio::awaitable<int> {
    auto executor = co_await asio::this_coro::executor;
    int ok = 0;
    int finished = 0;
    constexpr int per_client = 1250;
    const int total = per_client * static_cast<int>(clients.size());
    asio::steady_timer done(executor, asio::steady_timer::time_point::max());
    for (std::size_t c = 0; c < clients.size(); ++c) {
      for (int i = 0; i < per_client; ++i) {
        asio::co_spawn(
            executor,
            [](rpc::RpcNode& node, PeerAddress to, std::string expect,
               int& ok) -> asio::awaitable<void> {
              Bytes reply = co_await node.call(to, "echo", bytes_of(expect), {.timeout = 60s});
              if (string_of(reply) == expect) ++ok;
            }(*clients[c], to, std::to_string(c) + "/" + std::to_string(i), ok),
            [&](std::exception_ptr) {
              if (++finished == total) done.cancel();
            });
      }
    }
    std::error_code ec;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return ok;
  };
  EXPECT_EQ(run(ctx, all(clients, server->local_address()), 90s), 10000);
  for (auto& client : clients) EXPECT_EQ(client->connection_count(), 1u);
  EXPECT_EQ(server->connection_count(), 8u);
}

TEST(RpcTcp, GibibyteStreamKeepsMemoryBounded) {
  asio::io_context ctx;
  rpc::RpcOptions options;
  options.stream_window_bytes = 4u << 20;
  auto server = tcp_node(ctx, options);
  auto client = tcp_node(ctx, options);
  std::uint64_t received = 0;
  bool contents_ok = true;
  server->add_stream_method(
      "sink", [&](const rpc::RequestContext&, rpc::StreamPtr stream) -> asio::awaitable<void> {
        std::uint64_t index = 0;
        while (auto chunk = co_await stream->read(10s)) {
          if (chunk->empty() || (*chunk)[0] != static_cast<std::uint8_t>(index++))
            contents_ok = false;
          received += chunk->size();
        }
        co_await stream->write(bytes_of(std::to_string(received)));
      });
  // Reset the peak-RSS mark so VmHWM measures this test only.
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  const long rss_before = status_kib("VmRSS");
  constexpr std::uint64_t total = 1ull << 30;
  constexpr std::size_t chunk_size = 1u << 20;
  auto send_all = [](rpc::RpcNode& node, PeerAddress to) -> asio::awaitable<std::string> {
    auto stream = co_await node.open_stream(to, "sink");
    for (std::uint64_t i = 0; i < total / chunk_size; ++i) {
      co_await stream->write(Bytes(chunk_size, static_cast<std::uint8_t>(i)));
    }
    co_await stream->close_write();
    auto reply = co_await stream->read(10s);
    co_return reply ? string_of(*reply) : std::string{};
  };
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(run(ctx, send_all(*client, server->local_address()), 120s), std::to_string(total));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(received, total);
  EXPECT_TRUE(contents_ok);
  const long growth_kib = status_kib("VmHWM") - rss_before;
  std::printf("1 GiB stream: %.2f s, peak RSS growth %ld KiB (sender and receiver together)\n",
              seconds, growth_kib);
  EXPECT_LT(growth_kib, 256 * 1024);
}

}  // namespace
}  // namespace apiary
