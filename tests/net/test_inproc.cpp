// In-process transport: address checks, admission, client mode, kill, and scale.
#include "core/identity.hpp"
#include "net/inproc_transport.hpp"
#include "net/rpc.hpp"
#include "tests/net/test_rpc_util.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace apiary {
namespace {

using namespace std::chrono_literals;
using test::run;

asio::awaitable<Errc> connect_error(TransportPtr from, PeerAddress to) {
  try {
    auto connection = co_await from->connect(to);
    connection->close();
  } catch (const Error& e) {
    co_return e.code();
  }
  co_return Errc::ok;
}

TEST(Inproc, ConnectChecksPeerIdAdmissionAndClientMode) {
  asio::io_context ctx;
  auto network = InprocNetwork::create(ctx.get_executor());
  auto server = network->create_transport(Identity::generate());
  server->listen([](ConnectionPtr) {});
  auto client = network->create_transport(Identity::generate());

  EXPECT_EQ(run(ctx, connect_error(client, server->local_address())), Errc::ok);
  PeerAddress wrong = server->local_address();
  wrong.peer = Identity::generate().peer_id();
  EXPECT_EQ(run(ctx, connect_error(client, wrong)), Errc::permission_denied);
  PeerAddress nowhere = server->local_address();
  nowhere.port = 999;
  EXPECT_EQ(run(ctx, connect_error(client, nowhere)), Errc::unavailable);

  TransportOptions guarded;
  guarded.admit = [](const PublicKey&, ByteSpan token) {
    return as_string_view(token) == "member";
  };
  auto members_only = network->create_transport(Identity::generate(), guarded);
  members_only->listen([](ConnectionPtr) {});
  EXPECT_EQ(run(ctx, connect_error(client, members_only->local_address())),
            Errc::permission_denied);
  TransportOptions member;
  member.own_token = Bytes{'m', 'e', 'm', 'b', 'e', 'r'};
  auto with_token = network->create_transport(Identity::generate(), member);
  EXPECT_EQ(run(ctx, connect_error(with_token, members_only->local_address())), Errc::ok);

  TransportOptions client_mode;
  client_mode.client_mode = true;
  auto hidden = network->create_transport(Identity::generate(), client_mode);
  hidden->listen([](ConnectionPtr) {});
  EXPECT_EQ(run(ctx, connect_error(client, hidden->local_address())), Errc::unavailable);
  std::optional<PeerAddress> announced = PeerAddress{};
  server->listen([&](ConnectionPtr c) { announced = c->remote_listen_address(); });
  EXPECT_EQ(run(ctx, connect_error(hidden, server->local_address())), Errc::ok);
  run(ctx, test::sleep_for(1ms));
  EXPECT_FALSE(announced.has_value());
}

TEST(Inproc, MessagesInOrderAndKillClosesConnections) {
  asio::io_context ctx;
  auto network = InprocNetwork::create(ctx.get_executor());
  auto server = network->create_transport(Identity::generate());
  ConnectionPtr accepted;
  server->listen([&](ConnectionPtr c) { accepted = std::move(c); });
  auto client = network->create_transport(Identity::generate());
  auto scenario = [](TransportPtr client, PeerAddress to, ConnectionPtr& accepted,
                     std::shared_ptr<InprocNetwork> network) -> asio::awaitable<Errc> {
    auto connection = co_await client->connect(to);
    for (std::uint8_t i = 0; i < 100; ++i) co_await connection->send(Bytes(1, i));
    co_await test::sleep_for(1ms);
    if (!accepted) throw std::runtime_error("not accepted");
    for (std::uint8_t i = 0; i < 100; ++i) {
      Bytes message = co_await accepted->receive();
      if (message != Bytes(1, i)) throw std::runtime_error("out of order");
    }
    network->kill(to.peer);
    try {
      co_await connection->receive();
    } catch (const Error& e) {
      co_return e.code();
    }
    co_return Errc::ok;
  };
  EXPECT_EQ(run(ctx, scenario(client, server->local_address(), accepted, network)),
            Errc::connection_closed);
  EXPECT_FALSE(accepted->is_open());
  EXPECT_EQ(run(ctx, connect_error(client, server->local_address())), Errc::unavailable);
}

TEST(Inproc, ThousandPeersConnectAndCall) {
  asio::io_context ctx;
  auto network = InprocNetwork::create(ctx.get_executor());
  constexpr int count = 1000;
  std::vector<std::unique_ptr<rpc::RpcNode>> nodes;
  for (int i = 0; i < count; ++i) {
    nodes.push_back(
        std::make_unique<rpc::RpcNode>(network->create_transport(Identity::generate())));
    nodes.back()->add_method("id",
                             [i](const rpc::RequestContext&, Bytes) -> asio::awaitable<Bytes> {
                               co_return test::bytes_of(std::to_string(i));
                             });
    nodes.back()->start();
  }
  // Every peer calls its 3 ring successors concurrently.
  auto all = [](std::vector<std::unique_ptr<rpc::RpcNode>>& nodes) -> asio::awaitable<int> {
    auto executor = co_await asio::this_coro::executor;
    int ok = 0;
    int finished = 0;
    const int total = static_cast<int>(nodes.size()) * 3;
    asio::steady_timer done(executor, asio::steady_timer::time_point::max());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      for (std::size_t k = 1; k <= 3; ++k) {
        const std::size_t j = (i + k) % nodes.size();
        asio::co_spawn(
            executor,
            [](rpc::RpcNode& from, PeerAddress to, std::string expect,
               int& ok) -> asio::awaitable<void> {
              if (test::string_of(co_await from.call(to, "id", {})) == expect) ++ok;
            }(*nodes[i], nodes[j]->local_address(), std::to_string(j), ok),
            [&](std::exception_ptr) {
              if (++finished == total) done.cancel();
            });
      }
    }
    std::error_code ec;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return ok;
  };
  EXPECT_EQ(run(ctx, all(nodes), 60s), count * 3);
  std::size_t connections = 0;
  for (auto& node : nodes) connections += node->connection_count();
  EXPECT_EQ(connections, 2u * count * 3);
}

}  // namespace
}  // namespace apiary
