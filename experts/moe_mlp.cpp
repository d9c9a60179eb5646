#include "experts/moe_mlp.hpp"

#include "core/error.hpp"

#include <random>
#include <string>

namespace apiary::experts {

namespace {

HostTensor to_host_tensor(const nn::Tensor& t) {
  return HostTensor({t.dim(0), t.dim(1)}, t.to_vector());
}

nn::Tensor view_of(HostTensor& t) {
  return nn::Tensor::view(t.values.data(), {t.rows(), t.row_size()}, nn::DType::f32,
                          nn::Device::cpu);
}

}  // namespace

MoeMlp::MoeMlp(MoeMlpConfig config, ExpertDirectory& directory, ExpertResolver resolver)
    : config_(std::move(config)) {
  if (config_.inputs == 0 || config_.classes == 0 || config_.hidden.empty()) {
    throw Error(Errc::invalid_argument, "moe-mlp: need inputs, classes and a hidden width");
  }
  const std::size_t width = config_.hidden.back();
  config_.moe.in_features = width;
  config_.moe.out_features = width;
  config_.moe.seed = config_.seed ^ 0x6d6f65u;  // the gate's own stream, same on every peer
  std::size_t in = config_.inputs;
  for (std::size_t i = 0; i < config_.hidden.size(); ++i) {
    dense_.push_back(
        std::make_unique<nn::Linear>(registry_, "fc" + std::to_string(i), in, config_.hidden[i]));
    if (config_.activation == nn::Activation::relu) {
      activations_.push_back(std::make_unique<nn::ReLU>());
    } else {
      activations_.push_back(std::make_unique<nn::GELU>());
    }
    in = config_.hidden[i];
  }
  const std::size_t gate_size = MixtureOfExperts::gate_size(config_.moe);
  const std::size_t gate_index = registry_.declare("moe.gate", {gate_size});
  head_ = std::make_unique<nn::Linear>(registry_, "head", width, config_.classes);
  registry_.finalize();
  std::mt19937_64 rng(config_.seed);
  for (auto& layer : dense_) layer->initialize(nn::Init::he, rng);
  head_->initialize(nn::Init::xavier, rng);
  moe_ = std::make_unique<MixtureOfExperts>(config_.moe, directory, std::move(resolver));
  moe_->use_gate_storage(registry_.parameter(gate_index).span<float>(),
                         registry_.gradient(gate_index).span<float>());
}

nn::Tensor MoeMlp::forward_to_head_input(const nn::Tensor& input) {
  nn::Tensor x = input;
  for (std::size_t i = 0; i < dense_.size(); ++i) {
    x = activations_[i]->forward(dense_[i]->forward(x));
  }
  moe_forward_ = moe_->forward(to_host_tensor(x));
  return view_of(moe_forward_.output);
}

nn::Tensor MoeMlp::forward(const nn::Tensor& input) {
  return head_->forward(forward_to_head_input(input));
}

float MoeMlp::forward_backward(const nn::Tensor& input, const nn::Tensor& labels) {
  registry_.zero_gradients();
  const nn::Tensor logits = head_->forward(forward_to_head_input(input));
  float loss = loss_.forward_backward(logits, labels);
  const bool balance = config_.moe.mode == GatingMode::switch_top1;
  if (balance) loss += config_.balancing_loss_weight * moe_forward_.balancing_loss;
  HostTensor grad_moe_output = to_host_tensor(head_->backward(loss_.grad()));
  HostTensor grad_moe_input =
      moe_->backward(moe_forward_, grad_moe_output, balance ? config_.balancing_loss_weight : 0.0f);
  nn::Tensor g = view_of(grad_moe_input);
  for (std::size_t i = dense_.size(); i-- > 0;) {
    g = dense_[i]->backward(activations_[i]->backward(g));
  }
  return loss;
}

}  // namespace apiary::experts
