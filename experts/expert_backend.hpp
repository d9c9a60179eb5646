#pragma once
// ExpertBackend: one hosted expert — its module, its schema, its optimizer.
// forward() runs a batch; backward() computes the gradients of one batch and
// immediately takes an optimizer step with them (experts train themselves on
// every backward batch, as in hivemind), returning the gradient w.r.t. the
// inputs. Inputs are checked against the declared schema first.
//
// The optimizer state lives on the module's device, next to its parameters.
// Thread-safe: every public method takes the backend's mutex, so a server's
// compute workers and its checkpoint writer can share one backend.
// Errors: throws apiary::Error (invalid_argument for a batch outside the schema
// or larger than max_batch_size, naming expected and actual shapes).
#include "experts/expert_module.hpp"
#include "kernels/optimizer.hpp"
#include "nn/tensor.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace apiary::experts {

struct ExpertOptimizerConfig {
  enum class Kind { none, sgd, adam };
  Kind kind = Kind::adam;
  kernels::AdamConfig adam{};
  kernels::SgdConfig sgd{};
  float clip_grad_norm = 0.0f;  // 0: no clipping
};

struct BackendOptions {
  std::size_t max_batch_size = 16384;
  ExpertOptimizerConfig optimizer{};
};

// Everything needed to resume an expert (checkpoints, tests).
struct ExpertState {
  std::uint64_t update_count = 0;
  std::vector<float> parameters;
  std::vector<float> optimizer_state;  // adam: [exp_avg | exp_avg_sq]; sgd: momentum
};

class ExpertBackend {
 public:
  ExpertBackend(std::string uid, std::unique_ptr<ExpertModule> module, BackendOptions options = {});

  const std::string& uid() const noexcept { return uid_; }
  const ExpertSchema& schema() const noexcept { return schema_; }
  const BackendOptions& options() const noexcept { return options_; }

  HostTensor forward(const HostTensor& input);
  // Gradient step on this batch; returns d loss / d input.
  HostTensor backward(const HostTensor& input, const HostTensor& grad_output);

  // Checks a request before queueing it (no compute): shape and batch limit.
  void check_forward(std::span<const std::size_t> input_shape) const;
  void check_backward(std::span<const std::size_t> input_shape,
                      std::span<const std::size_t> grad_output_shape) const;

  std::uint64_t update_count() const;
  ExpertState state() const;
  // Throws invalid_argument when the sizes do not match this expert.
  void load_state(const ExpertState& state);

 private:
  void step_locked();

  std::string uid_;
  std::unique_ptr<ExpertModule> module_;
  BackendOptions options_;
  ExpertSchema schema_;
  mutable std::mutex mutex_;
  std::uint64_t update_count_ = 0;
  nn::Tensor optimizer_state_;  // on the module's device
  nn::Tensor grad_scratch_;     // clipped gradients (clip_grad_norm > 0)
};

}  // namespace apiary::experts
