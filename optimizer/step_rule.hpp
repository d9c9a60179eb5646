#pragma once
// StepRule: how the collaborative optimizer turns an epoch's gradients (the
// swarm's average) into a step of the parameters, and the statistics that step
// keeps — averaged with peers, checkpointed and handed to late joiners.
//
// Two rules: ConfiguredStepRule, the run configuration's optimizer (nn/'s
// LocalOptimizer with its learning-rate schedule: what `apiary join` trains
// with), and ExternalStepRule, an optimizer the embedder owns — a
// torch.optim optimizer behind the Python bridge — whose step is a callback
// and whose statistics live in the embedder's own (host) buffers.
//
// Threading: the collaborative optimizer calls every member with its state
// lock held, from the training thread (state averaging: the worker's results
// are applied on the training thread too). Errors: step() may throw; the
// exception leaves CollaborativeOptimizer::step().
#include "nn/local_optimizer.hpp"
#include "optimizer/run_config.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace apiary::optimizer {

class StepRule {
 public:
  virtual ~StepRule() = default;
  // One step of `grads` (averaged, clipped when the run says so) on `params`;
  // `epoch` is the epoch the gradients belong to.
  virtual void step(std::span<float> params, std::span<const float> grads, std::uint64_t epoch) = 0;
  // The statistics, in a fixed order and of fixed sizes.
  virtual std::vector<std::span<float>> state_buffers() = 0;
  virtual std::uint64_t steps_taken() const = 0;
  virtual void set_steps_taken(std::uint64_t steps) = 0;
  // A copy with statistics of its own, for overlap's speculative step;
  // nullptr when the rule cannot be copied (overlap is then turned off).
  virtual std::unique_ptr<StepRule> clone() const = 0;
  // Makes `target` (a former clone()) a copy of this rule again, reusing its
  // buffers; false when it cannot (then clone() anew).
  virtual bool copy_into(StepRule& /*target*/) const { return false; }
  // The collaborative optimizer replaced parameters or statistics behind the
  // rule's back (state averaging, a downloaded state): a rule that mirrors
  // them elsewhere (a GPU) copies them again.
  virtual void state_replaced() {}
};

// The run configuration's optimizer and schedule over `num_params` values.
class ConfiguredStepRule final : public StepRule {
 public:
  ConfiguredStepRule(const OptimizerConfig& config, std::size_t num_params,
                     std::vector<kernels::TensorSlice> slices = {});
  void step(std::span<float> params, std::span<const float> grads, std::uint64_t epoch) override;
  std::vector<std::span<float>> state_buffers() override { return local_.state_buffers(); }
  std::uint64_t steps_taken() const override { return local_.steps_taken(); }
  void set_steps_taken(std::uint64_t steps) override { local_.set_steps_taken(steps); }
  std::unique_ptr<StepRule> clone() const override;
  bool copy_into(StepRule& target) const override;

 private:
  OptimizerConfig config_;
  nn::LocalOptimizer local_;
};

// An embedder's optimizer: `step` is called with the parameters and the
// gradients to apply (both host buffers of the collaborative optimizer);
// `state` are the embedder's statistics buffers (they must outlive the rule);
// `state_replaced` (may be empty) after the optimizer wrote into them.
struct ExternalStep {
  std::function<void(std::span<float> params, std::span<const float> grads, std::uint64_t epoch)>
      step;
  std::vector<std::span<float>> state;
  std::function<void()> state_replaced;
};

class ExternalStepRule final : public StepRule {
 public:
  explicit ExternalStepRule(ExternalStep external);
  void step(std::span<float> params, std::span<const float> grads, std::uint64_t epoch) override;
  std::vector<std::span<float>> state_buffers() override { return external_.state; }
  std::uint64_t steps_taken() const override { return steps_; }
  void set_steps_taken(std::uint64_t steps) override { steps_ = steps; }
  std::unique_ptr<StepRule> clone() const override { return nullptr; }
  void state_replaced() override;

 private:
  ExternalStep external_;
  std::uint64_t steps_ = 0;
};

}  // namespace apiary::optimizer
