#include "optimizer/model_factory.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "dht/runner.hpp"
#include "experts/dht_directory.hpp"
#include "experts/moe_mlp.hpp"
#include "experts/remote_expert.hpp"
#include "nn/mlp.hpp"

#include <chrono>
#include <thread>

namespace apiary::optimizer {

namespace {

using Seconds = std::chrono::duration<double>;

nn::Activation activation_of(const ModelConfig& config) {
  return config.activation == "gelu" ? nn::Activation::gelu : nn::Activation::relu;
}

std::string widths(std::size_t inputs, const std::vector<std::uint32_t>& hidden) {
  std::string out = std::to_string(inputs);
  for (auto h : hidden) out += "-" + std::to_string(h);
  return out;
}

class MlpModel final : public RunModel {
 public:
  MlpModel(const ModelConfig& config, std::size_t inputs, std::size_t classes) {
    nn::MlpConfig mlp;
    mlp.layer_sizes = {inputs};
    for (auto h : config.hidden) mlp.layer_sizes.push_back(h);
    mlp.layer_sizes.push_back(classes);
    mlp.activation = activation_of(config);
    mlp.seed = config.seed;  // identical initial weights on every peer
    model_ = std::make_unique<nn::Mlp>(mlp);
    description_ = "mlp " + widths(inputs, config.hidden) + "-" + std::to_string(classes);
  }
  std::optional<float> forward_backward(const nn::Tensor& images,
                                        const nn::Tensor& labels) override {
    return model_->forward_backward(images, labels);
  }
  nn::Evaluation evaluate(const nn::Dataset& data) override { return nn::evaluate(*model_, data); }
  nn::ParameterRegistry& parameters() override { return model_->parameters(); }
  std::string describe() const override { return description_; }

 private:
  std::unique_ptr<nn::Mlp> model_;
  std::string description_;
};

experts::MoeConfig moe_layer_config(const MoeModelConfig& c) {
  experts::MoeConfig moe;
  moe.uid_prefix = c.expert_prefix + ".";
  moe.grid.assign(c.grid.begin(), c.grid.end());
  moe.mode = c.gating == "switch_top1" ? experts::GatingMode::switch_top1
                                       : experts::GatingMode::softmax_top_k;
  moe.k_best = c.k_best;
  moe.k_min = c.k_min;
  moe.backward_k_min = c.backward_k_min;
  auto ms = [](double seconds) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Seconds(seconds));
  };
  moe.forward_timeout = ms(c.forward_timeout);
  moe.timeout_after_k_min = ms(c.timeout_after_k_min);
  moe.backward_timeout = ms(c.backward_timeout);
  // Servers that start after this peer must be found soon: empty prefixes are
  // remembered only briefly.
  moe.beam.negative_cache_ttl = std::chrono::seconds(2);
  return moe;
}

// The expert servers' command line for this model (for error messages).
std::string expert_server_hint(const ModelConfig& config) {
  const auto& moe = config.moe;
  std::string pattern = moe.expert_prefix;
  for (auto g : moe.grid) pattern += ".[0:" + std::to_string(g) + "]";
  std::string line = "apiary expert-server --peers ADDR --experts '" + pattern + "' --hidden " +
                     std::to_string(config.hidden.back());
  if (moe.expert_inner) line += " --inner " + std::to_string(moe.expert_inner);
  return line;
}

class MoeMlpModel final : public RunModel {
 public:
  MoeMlpModel(const ModelConfig& config, std::size_t inputs, std::size_t classes,
              dht::DhtRunner& dht)
      : node_(dht.run([](dht::DhtNode& node) -> asio::awaitable<std::shared_ptr<dht::DhtNode>> {
                   co_return node.shared_from_this();
                 })
                  .get()),
        directory_(node_, std::chrono::milliseconds(5000)),
        hint_(expert_server_hint(config)) {
    experts::MoeMlpConfig c;
    c.inputs = inputs;
    c.hidden.assign(config.hidden.begin(), config.hidden.end());
    c.classes = classes;
    c.activation = activation_of(config);
    c.seed = config.seed;
    c.moe = moe_layer_config(config.moe);
    c.balancing_loss_weight = static_cast<float>(config.moe.balancing_loss_weight);
    model_ =
        std::make_unique<experts::MoeMlp>(c, directory_, experts::remote_resolver(node_->rpc()));
    std::string grid;
    for (auto g : config.moe.grid) grid += (grid.empty() ? "" : "x") + std::to_string(g);
    description_ = "moe-mlp " + widths(inputs, config.hidden) + "-[moe " +
                   config.moe.expert_prefix + " " + grid +
                   ", k=" + std::to_string(config.moe.k_best) + "]-" + std::to_string(classes);
  }

  std::optional<float> forward_backward(const nn::Tensor& images,
                                        const nn::Tensor& labels) override {
    try {
      return model_->forward_backward(images, labels);
    } catch (const Error& e) {
      if (e.code() != Errc::unavailable) throw;
      explain(e);
      // Back off a little, so that a peer waiting for expert servers does not spin.
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      return std::nullopt;
    }
  }

  nn::Evaluation evaluate(const nn::Dataset& data) override {
    constexpr std::size_t kBatch = 500;
    nn::Evaluation result;
    std::size_t evaluated = 0, correct = 0;
    double loss_sum = 0.0;
    const std::size_t features = data.features();
    for (std::size_t first = 0; first < data.size(); first += kBatch) {
      const std::size_t n = std::min(kBatch, data.size() - first);
      auto images = nn::Tensor::view(const_cast<float*>(data.images.data() + first * features),
                                     {n, features}, nn::DType::f32, nn::Device::cpu);
      std::vector<std::int32_t> labels(data.labels.begin() + first,
                                       data.labels.begin() + first + n);
      try {
        const nn::Tensor logits = model_->forward(images);
        auto label_tensor = nn::Tensor::view(labels.data(), {n}, nn::DType::i32, nn::Device::cpu);
        loss_sum += nn::SoftmaxCrossEntropy::loss(logits, label_tensor) * static_cast<double>(n);
        correct += nn::count_correct(logits, labels);
        evaluated += n;
      } catch (const Error& e) {
        if (e.code() != Errc::unavailable) throw;
        explain(e);
      }
    }
    if (evaluated < data.size()) {
      log::warn("evaluation: experts answered for {} of {} samples", evaluated, data.size());
    }
    if (evaluated > 0) {
      result.loss = loss_sum / static_cast<double>(evaluated);
      result.accuracy = static_cast<double>(correct) / static_cast<double>(evaluated);
    }
    return result;
  }

  nn::ParameterRegistry& parameters() override { return model_->parameters(); }
  std::string describe() const override { return description_; }

 private:
  // Says why a batch was not computed, at most every few seconds.
  void explain(const Error& e) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_warning_) {
      const auto& why = model_->mixture().last_expert_error();
      log::warn("moe: skipping a batch: {} ({}); expert servers of this run: {}", e.what(),
                why.empty() ? "no expert found in the DHT" : "last expert error: " + why, hint_);
      next_warning_ = now + std::chrono::seconds(5);
    }
  }

  std::shared_ptr<dht::DhtNode> node_;
  experts::DhtExpertDirectory directory_;
  std::string hint_;
  std::unique_ptr<experts::MoeMlp> model_;
  std::string description_;
  std::chrono::steady_clock::time_point next_warning_{};
};

}  // namespace

std::unique_ptr<dht::DhtRunner> connect_expert_dht(std::vector<PeerAddress> peers) {
  dht::DhtOptions options;
  options.client_mode = true;  // looks experts up, stores nothing for others
  return std::make_unique<dht::DhtRunner>(
      dht::DhtRunner::tcp(Identity::generate(), {"127.0.0.1", 0}, /*client_mode=*/true),
      std::move(peers), options);
}

bool needs_expert_dht(const ModelConfig& config) {
  return config.type == "moe-mlp";
}

std::unique_ptr<RunModel> build_model(const ModelConfig& config, std::size_t inputs,
                                      std::size_t classes, dht::DhtRunner* expert_dht) {
  if (config.type == "external") {
    throw Error(Errc::invalid_argument,
                "model.type external: the run trains a model of its training script's own; run "
                "that script (apiary.torch.Optimizer joins the run), not apiary join");
  }
  if (!needs_expert_dht(config)) return std::make_unique<MlpModel>(config, inputs, classes);
  if (expert_dht == nullptr) {
    throw Error(Errc::invalid_argument,
                "model.type moe-mlp calls remote experts found through the DHT: give --peers "
                "(a peer of the DHT where `" +
                    expert_server_hint(config) + "` declared its experts)");
  }
  return std::make_unique<MoeMlpModel>(config, inputs, classes, *expert_dht);
}

}  // namespace apiary::optimizer
