#pragma once
// MixtureOfExperts: a layer whose experts live anywhere (other processes, other
// machines). For each input row a linear gate scores every coordinate of every
// grid dimension; beam search (experts/beam_search.hpp) picks the k_best
// declared experts with the highest summed scores; the rows are sent to their
// experts (one call per expert with all its rows; servers re-batch), and the
// answers are combined:
//
//  - softmax_top_k: output = Σ softmax(score of the experts that answered) · expert output.
//    Experts that fail, time out or return non-finite values are masked out.
//  - switch_top1 (Switch Transformer style): per-dimension softmax gate
//    probabilities p_d; an expert's probability is Π_d p_d[coord_d]; usually
//    k_best = 1, output = Σ probability · expert output, plus a load-balancing
//    loss Σ_d size_d · Σ_i f_{d,i} · mean_rows p_d[i] (f = share of rows whose
//    top choice has coordinate i in dimension d), to be added to the training loss.
//
// A forward pass succeeds while every row has at least k_min answers: the layer
// waits for all calls until forward_timeout, but stops early once every row has
// k_min answers and timeout_after_k_min more has passed. backward() returns
// d loss / d input, accumulates the gate's gradients (the caller's optimizer
// steps them), and sends each answering expert its share of the output
// gradient — the experts update themselves.
//
// Threading: one layer per user thread; forward/backward block that thread.
// Errors: throws apiary::Error — invalid_argument for inputs of the wrong
// shape, unavailable when some row has fewer than k_min (backward_k_min) answers.
#include "experts/beam_search.hpp"
#include "experts/expert_handle.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace apiary::experts {

enum class GatingMode { softmax_top_k, switch_top1 };

struct MoeConfig {
  std::size_t in_features = 0;
  std::size_t out_features = 0;
  std::string uid_prefix = "ffn.";
  std::vector<std::size_t> grid;
  GatingMode mode = GatingMode::softmax_top_k;
  std::size_t k_best = 4;
  std::size_t k_min = 1;
  std::size_t backward_k_min = 1;
  std::chrono::milliseconds forward_timeout{10000};
  std::chrono::milliseconds timeout_after_k_min{1000};
  std::chrono::milliseconds backward_timeout{10000};
  // An expert whose call failed is skipped by later searches for this long,
  // and rows left short of k_min are retried once with the next best experts.
  std::chrono::milliseconds failed_expert_ttl{30000};
  BeamSearchOptions beam{};
  std::uint64_t seed = 0;  // gate initialisation
};

// Turns a directory entry into something callable (LocalExpert, RemoteExpert…).
using ExpertResolver = std::function<ExpertHandlePtr(const ExpertInfo&)>;

struct MoeContext;

struct MoeForward {
  HostTensor output;
  float balancing_loss = 0.0f;          // switch_top1 only
  std::vector<std::size_t> answered;    // experts that answered, per row
  std::shared_ptr<MoeContext> context;  // what backward() needs
};

class MixtureOfExperts {
 public:
  MixtureOfExperts(MoeConfig config, ExpertDirectory& directory, ExpertResolver resolver);
  ~MixtureOfExperts();
  MixtureOfExperts(const MixtureOfExperts&) = delete;
  MixtureOfExperts& operator=(const MixtureOfExperts&) = delete;

  MoeForward forward(const HostTensor& input);
  // `balancing_loss_weight` is d loss / d balancing_loss (switch_top1).
  HostTensor backward(const MoeForward& forward, const HostTensor& grad_output,
                      float balancing_loss_weight = 0.0f);

  // Gate parameters [W (in × Σgrid) | b (Σgrid)] and their accumulated gradients.
  std::span<float> gate_parameters() noexcept { return gate_params_; }
  std::span<const float> gate_gradients() const noexcept { return gate_grads_; }
  void zero_gate_gradients();
  // Number of gate parameters for `config`.
  static std::size_t gate_size(const MoeConfig& config);
  // Moves the gate into caller-owned buffers of gate_size() floats each (e.g.
  // slices of a model's flat parameter buffer, so that one optimizer steps and
  // averages everything): copies the current parameters and gradients there;
  // from then on the layer reads and accumulates into them. They must outlive the layer.
  void use_gate_storage(std::span<float> parameters, std::span<float> gradients);
  const MoeConfig& config() const noexcept { return config_; }
  BeamSearcher& searcher() noexcept { return searcher_; }
  // Why the most recent failed expert call failed ("ffn.0.1: …"), for diagnostics.
  const std::string& last_expert_error() const noexcept { return last_expert_error_; }

 private:
  ExpertHandlePtr handle_for(const ExpertInfo& info);
  // Calls the experts of groups [first_group, end) and waits for them (see the
  // header comment); counts answers per row into `answered`.
  void dispatch_and_wait(MoeContext& ctx, std::size_t first_group, Clock::time_point hard_deadline,
                         std::vector<std::size_t>& answered);
  // forward()'s steps.
  std::vector<GridScores> gate_scores(MoeContext& ctx) const;
  void assign_rows(MoeContext& ctx, const std::vector<std::size_t>& search_rows,
                   const std::vector<std::vector<ScoredExpert>>& chosen);
  HostTensor combine_outputs(MoeContext& ctx) const;
  float balancing_loss(MoeContext& ctx) const;
  // backward()'s steps.
  std::vector<float> gate_logit_gradients(const MoeContext& ctx, const HostTensor& grad_output,
                                          float balancing_loss_weight) const;
  HostTensor expert_backward(const MoeContext& ctx, const HostTensor& grad_output,
                             const std::vector<std::size_t>& forward_answers);
  void gate_backward(const MoeContext& ctx, std::span<const float> dlogits, HostTensor& grad_input);

  MoeConfig config_;
  std::size_t gate_width_ = 0;  // Σ grid
  std::vector<std::size_t> grid_offsets_;
  BeamSearcher searcher_;
  ExpertResolver resolver_;
  std::map<std::string, std::pair<ExpertInfo, ExpertHandlePtr>> handles_;
  std::map<std::string, Clock::time_point> failed_until_;
  std::string last_expert_error_;
  std::vector<float> owned_gate_params_, owned_gate_grads_;  // unless use_gate_storage()
  std::span<float> gate_params_, gate_grads_;
};

}  // namespace apiary::experts
