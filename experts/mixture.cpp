#include "experts/mixture.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "kernels/blas.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace apiary::experts {

namespace k = apiary::kernels;

// One expert called during a forward pass, with the rows routed to it.
struct MoeGroup {
  std::string uid;
  ExpertHandlePtr handle;
  bool failed = false;            // the call failed (not merely unfinished)
  std::vector<std::size_t> rows;  // input rows, in order
  HostTensor input;
  std::optional<HostTensor> output;  // set when the expert answered
};

// One (row, expert) pair chosen by beam search.
struct MoeSlot {
  std::size_t group = 0;
  std::size_t index_in_group = 0;
  std::vector<std::uint32_t> coords;
  float weight = 0.0f;  // softmax weight or switch probability (answered slots only)
  bool answered = false;
};

struct MoeContext {
  HostTensor input;
  std::vector<float> logits;  // [rows × Σgrid]
  std::vector<float> probs;   // switch: per-dimension softmax of logits
  std::vector<MoeGroup> groups;
  std::vector<std::vector<MoeSlot>> slots;  // per row
  std::vector<float> top_share;             // switch: f_{d,i}, laid out like a gate row
};

MixtureOfExperts::MixtureOfExperts(MoeConfig config, ExpertDirectory& directory,
                                   ExpertResolver resolver)
    : config_(std::move(config)),
      searcher_(directory, config_.uid_prefix, config_.grid, config_.beam),
      resolver_(std::move(resolver)) {
  if (config_.in_features == 0 || config_.out_features == 0) {
    throw Error(Errc::invalid_argument, "moe: in_features and out_features must be positive");
  }
  if (config_.k_best == 0 || config_.k_min > config_.k_best) {
    throw Error(Errc::invalid_argument, "moe: need 0 <= k_min <= k_best and k_best >= 1");
  }
  for (auto size : config_.grid) {
    grid_offsets_.push_back(gate_width_);
    gate_width_ += size;
  }
  owned_gate_params_.assign(gate_size(config_), 0.0f);
  owned_gate_grads_.assign(owned_gate_params_.size(), 0.0f);
  gate_params_ = owned_gate_params_;
  gate_grads_ = owned_gate_grads_;
  std::mt19937_64 rng(config_.seed);
  const float bound = 1.0f / std::sqrt(static_cast<float>(config_.in_features));
  std::uniform_real_distribution<float> dist(-bound, bound);
  for (std::size_t i = 0; i < config_.in_features * gate_width_; ++i) gate_params_[i] = dist(rng);
}

MixtureOfExperts::~MixtureOfExperts() = default;

void MixtureOfExperts::zero_gate_gradients() {
  std::fill(gate_grads_.begin(), gate_grads_.end(), 0.0f);
}

std::size_t MixtureOfExperts::gate_size(const MoeConfig& config) {
  std::size_t width = 0;
  for (auto size : config.grid) width += size;
  return config.in_features * width + width;
}

void MixtureOfExperts::use_gate_storage(std::span<float> parameters, std::span<float> gradients) {
  if (parameters.size() != gate_params_.size() || gradients.size() != gate_grads_.size()) {
    throw Error(Errc::invalid_argument,
                "moe: gate storage must hold " + std::to_string(gate_params_.size()) + " values");
  }
  std::copy(gate_params_.begin(), gate_params_.end(), parameters.begin());
  std::copy(gate_grads_.begin(), gate_grads_.end(), gradients.begin());
  gate_params_ = parameters;
  gate_grads_ = gradients;
  owned_gate_params_ = {};
  owned_gate_grads_ = {};
}

ExpertHandlePtr MixtureOfExperts::handle_for(const ExpertInfo& info) {
  auto it = handles_.find(info.uid);
  if (it != handles_.end() && it->second.first == info) return it->second.second;
  auto handle = resolver_(info);
  if (!handle) throw Error(Errc::unavailable, "moe: no handle for expert " + info.uid);
  handles_[info.uid] = {info, handle};
  return handle;
}

// Gate logits x·W + b into ctx.logits (and per-dimension softmax into ctx.probs
// in switch mode); returns the grid scores per row: logits, or log-probabilities.
std::vector<GridScores> MixtureOfExperts::gate_scores(MoeContext& ctx) const {
  const std::size_t rows = ctx.input.rows(), dims = config_.grid.size(), width = gate_width_;
  const bool switch_mode = config_.mode == GatingMode::switch_top1;
  const HostTensor& input = ctx.input;
  // Gate logits = x·W + b.
  std::span<const float> w(gate_params_.data(), config_.in_features * width);
  std::span<const float> b(gate_params_.data() + config_.in_features * width, width);
  ctx.logits.assign(rows * width, 0.0f);
  if (rows > 0) {
    k::gemm({rows, width, config_.in_features}, 1.0f, input.values, w, 0.0f, ctx.logits);
    k::add_bias_rows(ctx.logits, b, rows, width);
  }
  // Grid scores per row: logits, or log-probabilities in switch mode.
  std::vector<GridScores> scores(rows, GridScores(dims));
  if (switch_mode) ctx.probs.assign(rows * width, 0.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t d = 0; d < dims; ++d) {
      const float* z = ctx.logits.data() + r * width + grid_offsets_[d];
      auto& s = scores[r][d];
      s.assign(z, z + config_.grid[d]);
      if (switch_mode) {
        float max = *std::max_element(s.begin(), s.end());
        double sum = 0.0;
        for (float v : s) sum += std::exp(static_cast<double>(v - max));
        float* p = ctx.probs.data() + r * width + grid_offsets_[d];
        for (std::size_t i = 0; i < s.size(); ++i) {
          s[i] = static_cast<float>((s[i] - max) - std::log(sum));
          p[i] = std::exp(s[i]);
        }
      }
    }
  }
  return scores;
}

// Files each searched row under the groups of its chosen experts (one group per
// expert, created on first use; a retry skips experts the row already has).
void MixtureOfExperts::assign_rows(MoeContext& ctx, const std::vector<std::size_t>& search_rows,
                                   const std::vector<std::vector<ScoredExpert>>& chosen) {
  std::map<std::string, std::size_t> group_of;
  for (std::size_t i = 0; i < search_rows.size(); ++i) {
    const auto r = search_rows[i];
    for (auto& scored : chosen[i]) {
      bool known = false;  // a retry skips experts this row already has
      for (auto& slot : ctx.slots[r]) known |= ctx.groups[slot.group].uid == scored.expert.uid;
      if (known) continue;
      auto [it, inserted] = group_of.try_emplace(scored.expert.uid, ctx.groups.size());
      if (inserted) {
        MoeGroup group;
        group.uid = scored.expert.uid;
        try {
          group.handle = handle_for(scored.expert);
        } catch (const Error& e) {
          group.failed = true;
          last_expert_error_ = scored.expert.uid + ": " + e.what();
          log::debug("moe: cannot reach {}: {}", scored.expert.uid, e.what());
        }
        ctx.groups.push_back(std::move(group));
      }
      auto& group = ctx.groups[it->second];
      MoeSlot slot;
      slot.group = it->second;
      slot.index_in_group = group.rows.size();
      slot.coords = scored.coords;
      group.rows.push_back(r);
      ctx.slots[r].push_back(std::move(slot));
    }
  }
}

// Each row's output: the answering experts' outputs weighted by the softmax of
// their summed logits, or by their switch probabilities.
HostTensor MixtureOfExperts::combine_outputs(MoeContext& ctx) const {
  const std::size_t rows = ctx.input.rows(), dims = config_.grid.size(), width = gate_width_;
  const bool switch_mode = config_.mode == GatingMode::switch_top1;
  HostTensor output = HostTensor::zeros({rows, config_.out_features});
  for (std::size_t r = 0; r < rows; ++r) {
    auto& slots = ctx.slots[r];
    for (auto& slot : slots) slot.answered = ctx.groups[slot.group].output.has_value();
    if (switch_mode) {
      for (auto& slot : slots) {
        if (!slot.answered) continue;
        double p = 1.0;
        for (std::size_t d = 0; d < dims; ++d) {
          p *= ctx.probs[r * width + grid_offsets_[d] + slot.coords[d]];
        }
        slot.weight = static_cast<float>(p);
      }
    } else {
      // Softmax over the answering experts' summed logits.
      double max = -INFINITY;
      std::vector<double> s(slots.size(), 0.0);
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (!slots[i].answered) continue;
        for (std::size_t d = 0; d < dims; ++d) {
          s[i] += ctx.logits[r * width + grid_offsets_[d] + slots[i].coords[d]];
        }
        max = std::max(max, s[i]);
      }
      double sum = 0.0;
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (slots[i].answered) sum += std::exp(s[i] - max);
      }
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (slots[i].answered) slots[i].weight = static_cast<float>(std::exp(s[i] - max) / sum);
      }
    }
    auto y = output.row(r);
    for (auto& slot : slots) {
      if (!slot.answered) continue;
      auto out = ctx.groups[slot.group].output->row(slot.index_in_group);
      for (std::size_t j = 0; j < y.size(); ++j) y[j] += slot.weight * out[j];
    }
  }

  return output;
}

// Switch mode's load-balancing loss; fills ctx.top_share (f_{d,i}) for backward.
float MixtureOfExperts::balancing_loss(MoeContext& ctx) const {
  const std::size_t rows = ctx.input.rows(), dims = config_.grid.size(), width = gate_width_;
  // f_{d,i}: share of rows whose top choice has coordinate i in dimension d.
  ctx.top_share.assign(width, 0.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    if (ctx.slots[r].empty()) continue;
    const auto& top = ctx.slots[r].front();
    for (std::size_t d = 0; d < dims; ++d) {
      ctx.top_share[grid_offsets_[d] + top.coords[d]] += 1.0f / static_cast<float>(rows);
    }
  }
  double loss = 0.0;
  for (std::size_t d = 0; d < dims; ++d) {
    for (std::size_t i = 0; i < config_.grid[d]; ++i) {
      double mean_p = 0.0;
      for (std::size_t r = 0; r < rows; ++r) mean_p += ctx.probs[r * width + grid_offsets_[d] + i];
      mean_p /= static_cast<double>(rows);
      loss += static_cast<double>(config_.grid[d]) * ctx.top_share[grid_offsets_[d] + i] * mean_p;
    }
  }
  return static_cast<float>(loss);
}

MoeForward MixtureOfExperts::forward(const HostTensor& input) {
  TensorSchema{{config_.in_features}}.check(input, "moe input");
  const std::size_t rows = input.rows();
  const bool switch_mode = config_.mode == GatingMode::switch_top1;
  auto ctx = std::make_shared<MoeContext>();
  ctx->input = input;

  std::vector<GridScores> scores = gate_scores(*ctx);
  const auto start = Clock::now();
  const auto hard_deadline = start + config_.forward_timeout;
  std::erase_if(failed_until_, [&](const auto& entry) { return entry.second <= start; });
  auto excluded = [this](const std::string& uid) { return failed_until_.count(uid) > 0; };
  ctx->slots.resize(rows);
  std::vector<std::size_t> answered(rows, 0);
  std::vector<std::size_t> search_rows(rows);
  std::iota(search_rows.begin(), search_rows.end(), std::size_t{0});
  // Round 0 asks the best experts; round 1 retries rows short of k_min with the
  // next best ones, passing over the experts that just failed.
  for (int round = 0; round < 2 && !search_rows.empty(); ++round) {
    std::vector<GridScores> round_scores;
    for (auto r : search_rows) round_scores.push_back(scores[r]);
    auto chosen = searcher_.find_best_experts(round_scores, config_.k_best, excluded);
    const std::size_t first_group = ctx->groups.size();
    assign_rows(*ctx, search_rows, chosen);
    dispatch_and_wait(*ctx, first_group, hard_deadline, answered);
    const auto now = Clock::now();
    for (std::size_t g = first_group; g < ctx->groups.size(); ++g) {
      if (ctx->groups[g].failed)
        failed_until_[ctx->groups[g].uid] = now + config_.failed_expert_ttl;
    }
    if (now >= hard_deadline) break;
    search_rows.clear();
    for (std::size_t r = 0; r < rows; ++r) {
      if (answered[r] < config_.k_min) search_rows.push_back(r);
    }
  }

  for (std::size_t r = 0; r < rows; ++r) {
    if (answered[r] < config_.k_min) {
      throw Error(Errc::unavailable,
                  "moe: row " + std::to_string(r) + " got " + std::to_string(answered[r]) +
                      " expert answers, k_min is " + std::to_string(config_.k_min));
    }
  }

  MoeForward result;
  result.output = combine_outputs(*ctx);
  if (switch_mode && rows > 0) result.balancing_loss = balancing_loss(*ctx);
  result.answered = std::move(answered);
  result.context = std::move(ctx);
  return result;
}

void MixtureOfExperts::dispatch_and_wait(MoeContext& ctx, std::size_t first_group,
                                         Clock::time_point hard_deadline,
                                         std::vector<std::size_t>& answered) {
  auto signal = std::make_shared<CompletionSignal>();
  const std::size_t count = ctx.groups.size() - first_group;
  std::vector<PendingTensor> pending(count);
  for (std::size_t i = 0; i < count; ++i) {
    auto& group = ctx.groups[first_group + i];
    group.input.shape = {group.rows.size(), config_.in_features};
    group.input.values.reserve(group.rows.size() * config_.in_features);
    for (auto r : group.rows) {
      auto row = ctx.input.row(r);
      group.input.values.insert(group.input.values.end(), row.begin(), row.end());
    }
    if (group.handle) {
      pending[i] = group.handle->forward(group.input, signal, hard_deadline - Clock::now());
    }
  }
  // Wait: all calls, or k_min answers per row plus a grace period, or the deadline.
  std::vector<bool> finished(count, false);
  std::optional<Clock::time_point> k_min_reached;
  while (true) {
    auto seen = signal->count();
    bool all_finished = true;
    for (std::size_t i = 0; i < count; ++i) {
      if (finished[i]) continue;
      if (pending[i].valid() && !pending[i].is_ready()) {
        all_finished = false;
        continue;
      }
      finished[i] = true;
      if (!pending[i].valid()) continue;
      auto& group = ctx.groups[first_group + i];
      try {
        auto out = pending[i].get();
        TensorSchema{{config_.out_features}}.check(out, group.uid + " output");
        if (out.rows() != group.rows.size()) {
          throw Error(Errc::bad_message, group.uid + " returned " + std::to_string(out.rows()) +
                                             " rows for " + std::to_string(group.rows.size()));
        }
        if (!std::all_of(out.values.begin(), out.values.end(),
                         [](float v) { return std::isfinite(v); })) {
          throw Error(Errc::bad_message, group.uid + " returned non-finite values");
        }
        group.output = std::move(out);
        for (auto r : group.rows) ++answered[r];
      } catch (const std::exception& e) {
        group.failed = true;
        last_expert_error_ = group.uid + ": " + e.what();
        log::debug("moe: expert {} failed: {}", group.uid, e.what());
      }
    }
    const auto now = Clock::now();
    if (all_finished || now >= hard_deadline) break;
    bool enough = std::all_of(answered.begin(), answered.end(),
                              [&](std::size_t n) { return n >= config_.k_min; });
    if (enough && !k_min_reached) k_min_reached = now;
    auto deadline = hard_deadline;
    if (k_min_reached) {
      deadline = std::min(deadline, *k_min_reached + config_.timeout_after_k_min);
      if (now >= deadline) break;
    }
    signal->wait_beyond(seen, deadline);
  }
}

HostTensor MixtureOfExperts::backward(const MoeForward& forward, const HostTensor& grad_output,
                                      float balancing_loss_weight) {
  if (!forward.context) throw Error(Errc::invalid_argument, "moe backward: no forward context");
  auto& ctx = *forward.context;
  const std::size_t rows = ctx.input.rows();
  TensorSchema{{config_.out_features}}.check(grad_output, "moe grad_output");
  if (grad_output.rows() != rows) {
    throw Error(Errc::invalid_argument, "moe grad_output: expected " + std::to_string(rows) +
                                            " rows, got " + std::to_string(grad_output.rows()));
  }
  const std::vector<float> dlogits = gate_logit_gradients(ctx, grad_output, balancing_loss_weight);
  HostTensor grad_input = expert_backward(ctx, grad_output, forward.answered);
  gate_backward(ctx, dlogits, grad_input);
  return grad_input;
}

// d loss / d gate logits per row, from the answering experts' outputs (and the
// balancing loss in switch mode).
std::vector<float> MixtureOfExperts::gate_logit_gradients(const MoeContext& ctx,
                                                          const HostTensor& grad_output,
                                                          float balancing_loss_weight) const {
  const std::size_t rows = ctx.input.rows(), dims = config_.grid.size(), width = gate_width_;
  const bool switch_mode = config_.mode == GatingMode::switch_top1;
  std::vector<float> dlogits(rows * width, 0.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    auto dy = grad_output.row(r);
    auto& slots = ctx.slots[r];
    // g_e = dy · out_e: the gradient w.r.t. each answering expert's weight.
    std::vector<double> g(slots.size(), 0.0);
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (!slots[i].answered) continue;
      auto out = ctx.groups[slots[i].group].output->row(slots[i].index_in_group);
      for (std::size_t j = 0; j < dy.size(); ++j) g[i] += static_cast<double>(dy[j]) * out[j];
    }
    float* dz = dlogits.data() + r * width;
    if (!switch_mode) {
      double mean = 0.0;
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (slots[i].answered) mean += slots[i].weight * g[i];
      }
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (!slots[i].answered) continue;
        auto ds = static_cast<float>(slots[i].weight * (g[i] - mean));
        for (std::size_t d = 0; d < dims; ++d) dz[grid_offsets_[d] + slots[i].coords[d]] += ds;
      }
    } else {
      const float* p = ctx.probs.data() + r * width;
      std::vector<double> dp(width, 0.0);
      for (std::size_t i = 0; i < slots.size(); ++i) {
        if (!slots[i].answered) continue;
        for (std::size_t d = 0; d < dims; ++d) {
          double others = 1.0;  // Π_{d' ≠ d} p_{d'}[coord]
          for (std::size_t e = 0; e < dims; ++e) {
            if (e != d) others *= p[grid_offsets_[e] + slots[i].coords[e]];
          }
          dp[grid_offsets_[d] + slots[i].coords[d]] += g[i] * others;
        }
      }
      if (balancing_loss_weight != 0.0f && !ctx.top_share.empty()) {
        for (std::size_t d = 0; d < dims; ++d) {
          for (std::size_t c = 0; c < config_.grid[d]; ++c) {
            dp[grid_offsets_[d] + c] +=
                balancing_loss_weight * static_cast<double>(config_.grid[d]) *
                ctx.top_share[grid_offsets_[d] + c] / static_cast<double>(rows);
          }
        }
      }
      // Softmax backward per dimension.
      for (std::size_t d = 0; d < dims; ++d) {
        const auto off = grid_offsets_[d];
        double dot = 0.0;
        for (std::size_t c = 0; c < config_.grid[d]; ++c) dot += p[off + c] * dp[off + c];
        for (std::size_t c = 0; c < config_.grid[d]; ++c) {
          dz[off + c] += static_cast<float>(p[off + c] * (dp[off + c] - dot));
        }
      }
    }
  }

  return dlogits;
}

// Each answering expert's backward (weight · dy for its rows); returns the summed
// input gradients. Throws unavailable when a row has too few answers.
HostTensor MixtureOfExperts::expert_backward(const MoeContext& ctx, const HostTensor& grad_output,
                                             const std::vector<std::size_t>& forward_answers) {
  const std::size_t rows = ctx.input.rows();
  // Experts: each answering expert gets weight · dy for its rows.
  auto grad_input = HostTensor::zeros({rows, config_.in_features});
  auto signal = std::make_shared<CompletionSignal>();
  std::vector<PendingTensor> pending(ctx.groups.size());
  for (std::size_t g = 0; g < ctx.groups.size(); ++g) {
    auto& group = ctx.groups[g];
    if (!group.output) continue;
    auto grad_out = HostTensor::zeros({group.rows.size(), config_.out_features});
    for (std::size_t i = 0; i < group.rows.size(); ++i) {
      const auto r = group.rows[i];
      float weight = 0.0f;
      for (auto& slot : ctx.slots[r]) {
        if (slot.group == g) weight = slot.weight;
      }
      auto dy = grad_output.row(r);
      auto dst = grad_out.row(i);
      for (std::size_t j = 0; j < dy.size(); ++j) dst[j] = weight * dy[j];
    }
    pending[g] =
        group.handle->backward(group.input, std::move(grad_out), signal, config_.backward_timeout);
  }
  const auto deadline = Clock::now() + config_.backward_timeout;
  std::vector<std::size_t> backward_answers(rows, 0);
  for (std::size_t g = 0; g < pending.size(); ++g) {
    if (!pending[g].valid()) continue;
    auto& group = ctx.groups[g];
    if (!pending[g].wait_until(deadline)) {
      log::debug("moe: backward of {} timed out", group.handle->uid());
      continue;
    }
    try {
      auto dx = pending[g].get();
      TensorSchema{{config_.in_features}}.check(dx, group.handle->uid() + " grad_input");
      if (dx.rows() != group.rows.size()) throw Error(Errc::bad_message, "wrong row count");
      if (!std::all_of(dx.values.begin(), dx.values.end(),
                       [](float v) { return std::isfinite(v); })) {
        throw Error(Errc::bad_message, "non-finite gradient");
      }
      for (std::size_t i = 0; i < group.rows.size(); ++i) {
        auto src = dx.row(i);
        auto dst = grad_input.row(group.rows[i]);
        for (std::size_t j = 0; j < src.size(); ++j) dst[j] += src[j];
        ++backward_answers[group.rows[i]];
      }
    } catch (const std::exception& e) {
      log::debug("moe: backward of {} failed: {}", group.handle->uid(), e.what());
    }
  }
  for (std::size_t r = 0; r < rows; ++r) {
    const auto need = std::min(config_.backward_k_min, forward_answers[r]);
    if (backward_answers[r] < need) {
      throw Error(Errc::unavailable, "moe backward: row " + std::to_string(r) + " got " +
                                         std::to_string(backward_answers[r]) +
                                         " expert answers, backward_k_min is " +
                                         std::to_string(config_.backward_k_min));
    }
  }

  return grad_input;
}

void MixtureOfExperts::gate_backward(const MoeContext& ctx, std::span<const float> dlogits,
                                     HostTensor& grad_input) {
  const std::size_t rows = ctx.input.rows(), width = gate_width_;
  // Gate: dW += xᵀ·dz, db += Σ dz, dx += dz·Wᵀ.
  if (rows > 0) {
    std::span<float> gw(gate_grads_.data(), config_.in_features * width);
    std::span<float> gb(gate_grads_.data() + config_.in_features * width, width);
    std::span<const float> w(gate_params_.data(), config_.in_features * width);
    k::gemm({config_.in_features, width, rows, k::Transpose::yes, k::Transpose::no}, 1.0f,
            ctx.input.values, dlogits, 1.0f, gw);
    std::vector<float> db(width);
    k::sum_rows(dlogits, db, rows, width);
    for (std::size_t i = 0; i < width; ++i) gb[i] += db[i];
    k::gemm({rows, config_.in_features, width, k::Transpose::no, k::Transpose::yes}, 1.0f, dlogits,
            w, 1.0f, grad_input.values);
  }
}

}  // namespace apiary::experts
