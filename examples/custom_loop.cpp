// Your own training loop through the embedding API (apiary::Optimizer): a hand-written network
// (784 → 32 → 10, ReLU, softmax, plain loops) on Fashion-MNIST, its weights and
// gradients in two flat buffers. After each mini-batch's backward pass,
// optimizer.step(batch) accumulates the gradients; at each epoch boundary (512
// samples, swarm-wide) it averages them with the peers and takes an Adam step.
//   custom_loop [--epochs 60]                      alone (a swarm of one)
//   custom_loop --peers ADDR --run NAME [--epochs N]  with a swarm of custom_loops;
//       ADDR is any peer of it, e.g. the address `apiary dht --listen 127.0.0.1:0` prints.
#include "nn/fashion_mnist.hpp"
#include "optimizer/embedded_optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace apiary;

constexpr std::size_t kIn = 784, kHidden = 32, kOut = 10, kBatch = 32;
// Offsets of the four tensors inside the flat buffers.
constexpr std::size_t kW1 = 0, kB1 = kW1 + kHidden * kIn, kW2 = kB1 + kHidden;
constexpr std::size_t kB2 = kW2 + kOut * kHidden, kSize = kB2 + kOut;

struct Net {
  std::vector<float> w = std::vector<float>(kSize), g = std::vector<float>(kSize);
  float h[kHidden], p[kOut];
  // Class probabilities of one image into p (hidden activations into h).
  void forward(const float* x) {
    for (std::size_t j = 0; j < kHidden; ++j) {
      float s = w[kB1 + j];
      for (std::size_t i = 0; i < kIn; ++i) s += w[kW1 + j * kIn + i] * x[i];
      h[j] = std::max(s, 0.0f);
    }
    float top = -1e30f, sum = 0;
    for (std::size_t k = 0; k < kOut; ++k) {
      p[k] = w[kB2 + k];
      for (std::size_t j = 0; j < kHidden; ++j) p[k] += w[kW2 + k * kHidden + j] * h[j];
      top = std::max(top, p[k]);
    }
    for (float& v : p) sum += v = std::exp(v - top);
    for (float& v : p) v /= sum;
  }
  // Adds scale · ∂(cross-entropy)/∂w of one image to g; returns the loss.
  float backward(const float* x, int label, float scale) {
    forward(x);
    float dh[kHidden] = {};
    for (std::size_t k = 0; k < kOut; ++k) {
      const float d = scale * (p[k] - (static_cast<int>(k) == label ? 1.0f : 0.0f));
      g[kB2 + k] += d;
      for (std::size_t j = 0; j < kHidden; ++j) {
        g[kW2 + k * kHidden + j] += d * h[j];
        dh[j] += d * w[kW2 + k * kHidden + j];
      }
    }
    for (std::size_t j = 0; j < kHidden; ++j) {
      if (h[j] <= 0) continue;
      g[kB1 + j] += dh[j];
      for (std::size_t i = 0; i < kIn; ++i) g[kW1 + j * kIn + i] += dh[j] * x[i];
    }
    return -std::log(std::max(p[label], 1e-12f));
  }
};

int main(int argc, char** argv) {
  std::map<std::string, std::string> args{{"--run", "custom-loop"}, {"--epochs", "60"}};
  for (int i = 1; i + 1 < argc; i += 2) args[argv[i]] = argv[i + 1];
  const std::string peers = args["--peers"], run = args["--run"];
  const std::uint64_t epochs = std::stoull(args["--epochs"]);
  try {
    const auto train = nn::load_fashion_mnist(nn::Split::train);
    const auto test = nn::load_fashion_mnist(nn::Split::test);
    Net net;
    std::mt19937 init(7);  // the same initial weights on every peer
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (std::size_t i = kW1; i < kB1; ++i) net.w[i] = normal(init) * std::sqrt(2.0f / kIn);
    for (std::size_t i = kW2; i < kB2; ++i) net.w[i] = normal(init) * std::sqrt(2.0f / kHidden);
    apiary::OptimizerOptions options;  // what every peer of the run must agree on
    options.peers = peers;             // empty: alone
    options.run = run;
    options.target_batch_size = 512;
    options.learning_rate = 0.003;
    options.run_config_json =
        R"({"averaging": {"matchmaking_time": 1.0, "averaging_timeout": 10.0}})";
    apiary::Optimizer opt(options, net.w, net.g);
    if (!peers.empty()) std::fprintf(stderr, "joined as %s\n", opt.address().c_str());
    std::mt19937 rng{std::random_device{}()};  // each peer draws its own samples
    std::uniform_int_distribution<std::size_t> pick(0, train.size() - 1);
    double epoch_loss = 0, first_loss = -1, last_loss = 0;
    std::size_t epoch_batches = 0;
    while (opt.epoch() < epochs) {
      std::fill(net.g.begin(), net.g.end(), 0.0f);  // step() wants this batch's gradients only
      double loss = 0;
      for (std::size_t b = 0; b < kBatch; ++b) {
        const auto n = pick(rng);
        loss += net.backward(&train.images[n * kIn], train.labels[n], 1.0f / kBatch);
      }
      epoch_loss += loss / kBatch;
      ++epoch_batches;
      if (opt.step(kBatch)) {  // true: this call ended an epoch
        last_loss = epoch_loss / epoch_batches;
        if (first_loss < 0) first_loss = last_loss;
        if (opt.epoch() % 10 == 0 || opt.epoch() >= epochs)
          std::printf("epoch %3llu  loss %.4f  %s\n", static_cast<unsigned long long>(opt.epoch()),
                      last_loss, opt.last_epoch_averaged() ? "" : "(not averaged)");
        epoch_loss = 0;
        epoch_batches = 0;
      }
    }
    std::size_t correct = 0;
    for (std::size_t n = 0; n < test.size(); ++n) {
      net.forward(&test.images[n * kIn]);
      correct += std::max_element(net.p, net.p + kOut) - net.p == test.labels[n];
    }
    std::printf("final: epochs %llu, loss %.4f -> %.4f, test accuracy %.4f\n",
                static_cast<unsigned long long>(opt.epoch()), first_loss, last_loss,
                static_cast<double>(correct) / static_cast<double>(test.size()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "custom_loop: %s\n", e.what());
    return 1;
  }
  return 0;
}
