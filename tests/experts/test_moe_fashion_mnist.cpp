// End to end: a model whose middle layer is a mixture of experts hosted by two
// `apiary expert-server` processes (found through the DHT) trains on
// Fashion-MNIST; one server is SIGKILLed a third of the way through, and the
// model still reaches >= 80 % test accuracy with the surviving experts.
//
// Model: x (784) → MoE(784 → 784, grid 4×4, 2 experts per sample; experts are
// FFN 784 → 64 → 784 that train themselves on the server) → Linear(784 → 10),
// softmax cross-entropy. The gate and the head are trained here with Adam.
#include "client_peer.hpp"
#include "core/identity.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"
#include "dht/node.hpp"
#include "experts/dht_directory.hpp"
#include "experts/mixture.hpp"
#include "experts/remote_expert.hpp"
#include "kernels/activation.hpp"
#include "kernels/blas.hpp"
#include "kernels/optimizer.hpp"
#include "nn/dataset.hpp"
#include "nn/fashion_mnist.hpp"
#include "tests/integration/process.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include <cmath>
#include <future>
#include <random>
#include <set>
#include <thread>

using namespace apiary;
using namespace apiary::experts;
using apiary::experts::testing::ClientPeer;
using namespace std::chrono_literals;
namespace k = apiary::kernels;

namespace {

constexpr std::size_t kFeatures = 784, kClasses = 10;

std::unique_ptr<test::ChildProcess> start_server(const std::string& pattern,
                                                 const std::string& peers) {
  std::vector<std::string> argv{APIARY_BIN, "expert-server", "--experts",       pattern,
                                "--hidden", "784",           "--inner",         "64",
                                "--lr",     "0.001",         "--update-period", "1",
                                "--listen", "127.0.0.1:0"};
  if (!peers.empty()) argv.insert(argv.end(), {"--peers", peers});
  return std::make_unique<test::ChildProcess>(argv);
}

struct Adam {
  explicit Adam(std::size_t n) : m(n, 0.0f), v(n, 0.0f) {}
  void step(std::span<float> params, std::span<const float> grads, float lr) {
    k::AdamConfig config;
    config.lr = lr;
    k::adam_step(params, grads, m, v, ++t, config);
  }
  std::vector<float> m, v;
  std::uint64_t t = 0;
};

HostTensor rows_of(const nn::Dataset& data, std::size_t begin, std::size_t count) {
  HostTensor x;
  x.shape = {count, kFeatures};
  x.values.assign(data.images.begin() + begin * kFeatures,
                  data.images.begin() + (begin + count) * kFeatures);
  return x;
}

}  // namespace

TEST(MoeFashionMnist, TrainsWithTwoServerProcessesOneKilledMidTraining) {
  if (!nn::fashion_mnist_available()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const auto train = nn::load_fashion_mnist(nn::Split::train);
  const auto test_set = nn::load_fashion_mnist(nn::Split::test);

  auto first = start_server("ffn.[0:2].[0:4]", "");
  auto first_address = first->read_line(20s);
  ASSERT_TRUE(first_address);
  auto second = start_server("ffn.[2:4].[0:4]", *first_address);
  ASSERT_TRUE(second->read_line(20s));

  ClientPeer client(PeerAddress::parse(*first_address));
  DhtExpertDirectory directory(client.dht(), 5s);
  MoeConfig config;
  config.in_features = kFeatures;
  config.out_features = kFeatures;
  config.grid = {4, 4};
  config.k_best = 2;
  config.k_min = 1;
  config.forward_timeout = 10s;
  config.timeout_after_k_min = 1s;
  config.backward_timeout = 10s;
  config.beam.negative_cache_ttl = 0ms;

  {  // Wait until both servers' experts are in the DHT.
    BeamSearcher searcher(directory, "ffn.", {4, 4}, config.beam);
    std::set<std::string> servers;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (servers.size() < 2 && std::chrono::steady_clock::now() < deadline) {
      servers.clear();
      GridScores uniform{std::vector<float>(4, 0.0f), std::vector<float>(4, 0.0f)};
      for (auto& e : searcher.find_best_experts(uniform, 16)) {
        servers.insert(e.expert.server.to_string());
      }
      if (servers.size() < 2) std::this_thread::sleep_for(200ms);  // polling a DHT
    }
    ASSERT_EQ(servers.size(), 2u);
  }

  MixtureOfExperts moe(config, directory, remote_resolver(client.rpc()));
  // Head: logits = y·W + b.
  std::vector<float> head(kFeatures * kClasses + kClasses, 0.0f);
  {
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<float> dist(-1.0f / 28.0f, 1.0f / 28.0f);
    for (std::size_t i = 0; i < kFeatures * kClasses; ++i) head[i] = dist(rng);
  }
  std::span<float> w(head.data(), kFeatures * kClasses);
  std::span<float> b(head.data() + kFeatures * kClasses, kClasses);
  std::vector<float> head_grad(head.size());
  Adam head_opt(head.size()), gate_opt(moe.gate_parameters().size());

  auto logits_of = [&](const HostTensor& y) {
    std::vector<float> logits(y.rows() * kClasses);
    k::gemm({y.rows(), kClasses, kFeatures}, 1.0f, y.values, w, 0.0f, logits);
    k::add_bias_rows(logits, b, y.rows(), kClasses);
    return logits;
  };

  constexpr std::size_t kBatch = 64, kSteps = 900, kKillAt = 300;
  std::vector<std::uint32_t> order(train.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = std::uint32_t(i);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(11));
  const auto started = std::chrono::steady_clock::now();
  float loss = 0.0f;
  for (std::size_t step = 0; step < kSteps; ++step) {
    if (step == kKillAt) {
      second->signal(SIGKILL);
      ASSERT_TRUE(second->wait(10s));
    }
    HostTensor x;
    x.shape = {kBatch, kFeatures};
    std::vector<std::int32_t> labels(kBatch);
    for (std::size_t r = 0; r < kBatch; ++r) {
      const auto index = order[(step * kBatch + r) % order.size()];
      auto src = train.images.begin() + std::ptrdiff_t(index) * kFeatures;
      x.values.insert(x.values.end(), src, src + kFeatures);
      labels[r] = train.labels[index];
    }
    auto forward = moe.forward(x);
    auto logits = logits_of(forward.output);
    std::vector<float> dlogits(logits.size());
    loss = k::softmax_cross_entropy(logits, labels, kBatch, kClasses, dlogits);
    // Head gradients and the gradient flowing into the MoE output.
    std::span<float> gw(head_grad.data(), kFeatures * kClasses);
    std::span<float> gb(head_grad.data() + kFeatures * kClasses, kClasses);
    k::gemm({kFeatures, kClasses, kBatch, k::Transpose::yes, k::Transpose::no}, 1.0f,
            forward.output.values, dlogits, 0.0f, gw);
    k::sum_rows(dlogits, gb, kBatch, kClasses);
    auto dy = HostTensor::zeros({kBatch, kFeatures});
    k::gemm({kBatch, kFeatures, kClasses, k::Transpose::no, k::Transpose::yes}, 1.0f, dlogits, w,
            0.0f, dy.values);
    moe.zero_gate_gradients();
    moe.backward(forward, dy);
    head_opt.step(head, head_grad, 1e-3f);
    gate_opt.step(moe.gate_parameters(), moe.gate_gradients(), 1e-3f);
    ASSERT_TRUE(std::isfinite(loss));
    ASSERT_LT(std::chrono::steady_clock::now() - started, 240s) << "training too slow";
  }

  std::size_t correct = 0;
  constexpr std::size_t kEvalBatch = 500;
  for (std::size_t begin = 0; begin < test_set.size(); begin += kEvalBatch) {
    const auto count = std::min(kEvalBatch, test_set.size() - begin);
    auto forward = moe.forward(rows_of(test_set, begin, count));
    auto logits = logits_of(forward.output);
    for (std::size_t r = 0; r < count; ++r) {
      auto row = logits.begin() + std::ptrdiff_t(r * kClasses);
      auto predicted = std::max_element(row, row + kClasses) - row;
      correct += predicted == test_set.labels[begin + r];
    }
  }
  const double accuracy = double(correct) / double(test_set.size());
  std::printf("final train loss %.3f, test accuracy %.4f, %.1f s\n", loss, accuracy,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  EXPECT_GE(accuracy, 0.80);
  first->signal(SIGTERM);
  EXPECT_TRUE(first->wait(20s));
}
