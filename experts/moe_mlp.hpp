#pragma once
// MoeMlp: an MLP whose last hidden layer is a remote mixture of experts,
//
//   x → [Linear → activation] per hidden width → MixtureOfExperts(w → w) → Linear(w → classes)
//
// with w the last hidden width (the experts' --hidden). The dense layers, the
// gate and the head live in one nn::ParameterRegistry — the flat buffers a
// CollaborativeOptimizer steps and averages; the experts live on expert
// servers and take their own optimizer step on every backward call.
// Seeded like nn::Mlp: the same config gives the same local weights everywhere.
//
// Threading: one user thread; forward/backward block it while experts answer.
// Errors: throws apiary::Error{unavailable} when some sample gets fewer than
// k_min expert answers, forward or backward (skip the batch: its gradients are
// incomplete and must not be stepped), apiary::Error{invalid_argument} for bad configs,
// std::invalid_argument (nn/) for inputs of the wrong shape.
#include "experts/mixture.hpp"
#include "nn/layers.hpp"
#include "nn/loss.hpp"
#include "nn/mlp.hpp"
#include "nn/parameters.hpp"

#include <cstdint>
#include <memory>
#include <vector>

namespace apiary::experts {

struct MoeMlpConfig {
  std::size_t inputs = 784;
  std::vector<std::size_t> hidden = {128};  // dense widths; the last one is the MoE's width
  std::size_t classes = 10;
  nn::Activation activation = nn::Activation::relu;
  std::uint64_t seed = 0;
  MoeConfig moe;  // in_features/out_features/seed are set from the fields above
  float balancing_loss_weight = 0.0f;  // switch_top1: added to the loss with this weight
};

class MoeMlp {
 public:
  MoeMlp(MoeMlpConfig config, ExpertDirectory& directory, ExpertResolver resolver);

  // Logits [batch × classes] of a host f32 batch [batch × inputs] (no gradients).
  nn::Tensor forward(const nn::Tensor& input);
  // Zeroes the gradients, then forward, loss and backward; returns the loss
  // (cross-entropy, plus the weighted balancing loss in switch mode).
  float forward_backward(const nn::Tensor& input, const nn::Tensor& labels);

  // The switch_top1 load-balancing loss of the latest forward (0 otherwise), unweighted.
  float last_balancing_loss() const noexcept { return moe_forward_.balancing_loss; }
  nn::ParameterRegistry& parameters() noexcept { return registry_; }
  MixtureOfExperts& mixture() noexcept { return *moe_; }
  const MoeMlpConfig& config() const noexcept { return config_; }

 private:
  // Dense layers, then the mixture; keeps what backward needs in `moe_forward_`.
  nn::Tensor forward_to_head_input(const nn::Tensor& input);

  MoeMlpConfig config_;
  nn::ParameterRegistry registry_;
  std::vector<std::unique_ptr<nn::Linear>> dense_;
  std::vector<std::unique_ptr<nn::Layer>> activations_;
  std::unique_ptr<nn::Linear> head_;
  std::unique_ptr<MixtureOfExperts> moe_;
  MoeForward moe_forward_;
  nn::SoftmaxCrossEntropy loss_;
};

}  // namespace apiary::experts
