// Experts declared in a real DHT (in-process network): beam search through the
// DHT finds the exact top-k, and a mixture of experts finds and calls experts
// that a server declared periodically.
#include "core/codec.hpp"
#include "core/identity.hpp"
#include "dht/validator.hpp"
#include "experts/beam_search.hpp"
#include "experts/dht_directory.hpp"
#include "experts/expert_server.hpp"
#include "experts/ffn_expert.hpp"
#include "experts/mixture.hpp"
#include "experts/remote_expert.hpp"
#include "net/inproc_transport.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include <algorithm>
#include <future>
#include <random>
#include <thread>

using namespace apiary;
using namespace apiary::experts;
using namespace std::chrono_literals;

namespace {

class DhtSwarm {
 public:
  DhtSwarm() {
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~DhtSwarm() { shutdown(); }

  template <typename F>
  auto on_net(F&& fn) {
    std::packaged_task<decltype(fn())()> task(std::forward<F>(fn));
    auto future = task.get_future();
    asio::post(ctx_, [&task] { task(); });
    return future.get();
  }
  template <typename T>
  T run(asio::awaitable<T> task) {
    return asio::co_spawn(ctx_, std::move(task), asio::use_future).get();
  }

  std::shared_ptr<dht::DhtNode> add() {
    auto node = on_net([this] {
      const Identity identity = Identity::generate();
      auto rpc = std::make_shared<rpc::RpcNode>(network_->create_transport(identity));
      dht::DhtOptions options;  // signs as its peer, as servers declaring experts do
      options.validator = std::make_shared<dht::OwnerSignatureValidator>(identity);
      auto dht_node = dht::DhtNode::create(rpc, options);
      rpc->start();
      rpcs_.push_back(rpc);
      return dht_node;
    });
    std::vector<PeerAddress> peers;
    if (!nodes_.empty()) peers.push_back(nodes_.front()->address());
    run(node->bootstrap(peers));
    nodes_.push_back(node);
    return node;
  }

  void shutdown() {
    if (!thread_.joinable()) return;
    on_net([this] {
      for (auto& n : nodes_) n->stop();
      for (auto& r : rpcs_) r->stop();
    });
    guard_.reset();
    ctx_.stop();
    thread_.join();
    nodes_.clear();
    rpcs_.clear();
  }

 private:
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{ctx_.get_executor()};
  std::shared_ptr<InprocNetwork> network_ = InprocNetwork::create(ctx_.get_executor());
  std::vector<std::shared_ptr<rpc::RpcNode>> rpcs_;
  std::vector<std::shared_ptr<dht::DhtNode>> nodes_;
  std::thread thread_;
};

dht::StoredValue dictionary(std::vector<std::pair<std::string, Bytes>> entries) {
  dht::StoredValue v;
  v.is_dictionary = true;
  for (auto& [subkey, value] : entries) {
    auto key = as_bytes(subkey);
    v.subkeys[Bytes(key.begin(), key.end())] = {std::move(value), 1e12};
  }
  return v;
}

Bytes entry(std::string_view uid, std::string_view address) {
  codec::Writer w;
  w.array(2).str(uid).str(address);
  return w.take();
}

}  // namespace

TEST(ExpertDht, ParseChildrenSkipsMalformedEntries) {
  const Identity server = Identity::generate();
  const std::string owner = dht::OwnerSignatureValidator::owner_marker(server.public_key());
  auto address = PeerAddress{server.peer_id(), "127.0.0.1", 5}.to_string();
  auto value = dictionary({
      {"3" + owner, entry("ffn.3.1", address)},    // fine (a representative below "ffn.3.")
      {"4" + owner, entry("ffn.5.1", address)},    // uid under another branch
      {"05" + owner, entry("ffn.5.1", address)},   // leading zero
      {"x" + owner, entry("ffn.6.1", address)},    // not a number
      {"7" + owner, entry("ffn.7.1", "nowhere")},  // bad address
      {"8" + owner, Bytes{0xc1}},                  // not msgpack
  });
  auto children = parse_children("ffn.", value);
  ASSERT_EQ(children.size(), 1u);
  EXPECT_EQ(children.at(3).uid, "ffn.3.1");
  EXPECT_EQ(children.at(3).server.to_string(), address);
}

// Only a server can declare itself: an entry without an owner marker (nobody
// signed it) or naming another server than its signer is skipped.
TEST(ExpertDht, ParseChildrenTrustsOnlyEntriesTheirServerSigned) {
  const Identity server = Identity::generate();
  const Identity stranger = Identity::generate();
  const std::string owner = dht::OwnerSignatureValidator::owner_marker(server.public_key());
  const std::string other = dht::OwnerSignatureValidator::owner_marker(stranger.public_key());
  auto address = PeerAddress{server.peer_id(), "127.0.0.1", 5}.to_string();
  auto value = dictionary({
      {"1", entry("ffn.1.0", address)},            // unsigned
      {"2" + other, entry("ffn.2.0", address)},    // signed by someone else
      {"3[owner:zz]", entry("ffn.3.0", address)},  // a broken marker
      {"4" + owner, entry("ffn.4.0", address)},    // the server itself
  });
  auto children = parse_children("ffn.", value);
  ASSERT_EQ(children.size(), 1u);
  EXPECT_EQ(children.at(4).uid, "ffn.4.0");
}

// A node that does not sign as the declared server cannot declare for it.
TEST(ExpertDht, DeclaringForAnotherServerIsRefused) {
  DhtSwarm swarm;
  swarm.add();
  auto node = swarm.add();
  const PeerAddress someone_else{Identity::generate().peer_id(), "127.0.0.1", 9};
  EXPECT_THROW(
      swarm.run(declare_experts(*node, {"ffn.1.1"}, someone_else, dht::system_dht_time() + 60)),
      Error);
}

TEST(ExpertDht, BeamSearchThroughTheDhtIsExact) {
  DhtSwarm swarm;
  for (int i = 0; i < 5; ++i) swarm.add();
  auto server_node = swarm.add();
  auto client_node = swarm.add();
  std::mt19937_64 rng(5);
  std::bernoulli_distribution keep(0.6);
  std::vector<std::string> uids;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> present;
  for (std::uint32_t i = 0; i < 16; ++i) {
    for (std::uint32_t j = 0; j < 16; ++j) {
      if (i % 5 != 2 && keep(rng)) {
        uids.push_back("ffn." + std::to_string(i) + "." + std::to_string(j));
        present.emplace_back(i, j);
      }
    }
  }
  auto stored = swarm.run(
      declare_experts(*server_node, uids, server_node->address(), dht::system_dht_time() + 60));
  EXPECT_GT(stored, 0u);

  DhtExpertDirectory directory(client_node);
  BeamSearcher searcher(directory, "ffn.", {16, 16});
  std::normal_distribution<float> dist(0.0f, 2.0f);
  for (int trial = 0; trial < 5; ++trial) {
    GridScores s(2, std::vector<float>(16));
    for (auto& d : s) {
      for (auto& v : d) v = dist(rng);
    }
    std::vector<std::pair<double, std::string>> all;
    for (auto [i, j] : present) {
      all.emplace_back(double(s[0][i]) + s[1][j],
                       "ffn." + std::to_string(i) + "." + std::to_string(j));
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
    auto found = searcher.find_best_experts(s, 4);
    ASSERT_EQ(found.size(), 4u);
    for (std::size_t n = 0; n < 4; ++n) {
      EXPECT_EQ(found[n].expert.uid, all[n].second) << "trial " << trial;
      EXPECT_EQ(found[n].expert.server, server_node->address());
    }
  }
}

TEST(ExpertDht, MixtureFindsDeclaredExpertsAndCallsThem) {
  DhtSwarm swarm;
  for (int i = 0; i < 3; ++i) swarm.add();
  auto server_node = swarm.add();
  auto client_node = swarm.add();
  ExpertServer server(server_node->rpc());
  std::vector<std::string> uids;
  for (std::uint32_t i = 0; i < 2; ++i) {
    for (std::uint32_t j = 0; j < 4; ++j) {
      auto uid = "ffn." + std::to_string(i) + "." + std::to_string(j);
      uids.push_back(uid);
      server.add_expert(std::make_shared<ExpertBackend>(
          uid, std::make_unique<FfnExpert>(FfnConfig{6, 12, 6, i * 4 + j})));
    }
  }
  server.start();
  ExpertDeclarer declarer(server_node, uids, server_node->address(), 1s, 30s);
  declarer.start();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (declarer.rounds() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_GT(declarer.rounds(), 0u);

  DhtExpertDirectory directory(client_node);
  MoeConfig config;
  config.in_features = 6;
  config.out_features = 6;
  config.grid = {2, 4};
  config.k_best = 3;
  config.k_min = 3;
  MixtureOfExperts moe(config, directory, remote_resolver(client_node->rpc()));
  auto x = HostTensor::zeros({5, 6});
  for (std::size_t i = 0; i < x.values.size(); ++i) x.values[i] = std::sin(float(i));
  auto result = moe.forward(x);
  EXPECT_EQ(result.answered, std::vector<std::size_t>(5, 3));
  auto dx = moe.backward(result, result.output);
  EXPECT_EQ(dx.shape, x.shape);
  EXPECT_GT(server.stats().backward_rows, 0u);
  declarer.stop();
  server.stop();
}
