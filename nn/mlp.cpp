#include "nn/mlp.hpp"

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>

namespace apiary::nn {

namespace {
// Adapter so the layer list can hold the Linear layers owned by linears_.
class LinearRef final : public Layer {
 public:
  explicit LinearRef(Linear& linear) : linear_(linear) {}
  Tensor forward(const Tensor& input) override { return linear_.forward(input); }
  Tensor backward(const Tensor& grad) override { return linear_.backward(grad); }

 private:
  Linear& linear_;
};
}  // namespace

Mlp::Mlp(MlpConfig config) : config_(std::move(config)), registry_(config_.device) {
  const auto& sizes = config_.layer_sizes;
  if (sizes.size() < 2 || std::find(sizes.begin(), sizes.end(), 0u) != sizes.end()) {
    throw std::invalid_argument("Mlp: need at least input and output sizes, all > 0");
  }
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    linears_.push_back(
        std::make_unique<Linear>(registry_, "fc" + std::to_string(i), sizes[i], sizes[i + 1]));
  }
  registry_.finalize();
  std::mt19937_64 rng(config_.seed);
  for (std::size_t i = 0; i < linears_.size(); ++i) {
    bool last = i + 1 == linears_.size();
    linears_[i]->initialize(last ? Init::xavier : Init::he, rng);
    layers_.push_back(std::make_unique<LinearRef>(*linears_[i]));
    if (!last) {
      if (config_.activation == Activation::relu) {
        layers_.push_back(std::make_unique<ReLU>());
      } else {
        layers_.push_back(std::make_unique<GELU>());
      }
    }
  }
}

Tensor Mlp::forward(const Tensor& input) {
  Tensor x = input;
  for (auto& layer : layers_) x = layer->forward(x);
  return x;
}

void Mlp::backward(const Tensor& grad_logits) {
  Tensor g = grad_logits;
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) g = (*it)->backward(g);
}

float Mlp::forward_backward(const Tensor& input, const Tensor& labels) {
  registry_.zero_gradients();
  Tensor logits = forward(input);
  float loss = loss_.forward_backward(logits, labels);
  backward(loss_.grad());
  return loss;
}

std::size_t count_correct(const Tensor& logits, std::span<const std::int32_t> labels) {
  std::vector<float> host = logits.to_vector();
  const std::size_t rows = logits.dim(0), cols = logits.dim(1);
  if (labels.size() != rows) throw std::invalid_argument("count_correct: label count");
  std::size_t correct = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    const float* row = host.data() + r * cols;
    auto best = static_cast<std::int32_t>(std::max_element(row, row + cols) - row);
    if (best == labels[r]) ++correct;
  }
  return correct;
}

std::size_t Mlp::count_correct(const Tensor& input, std::span<const std::int32_t> labels) {
  return nn::count_correct(forward(input), labels);
}

}  // namespace apiary::nn
