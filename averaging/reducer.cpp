#include "averaging/reducer.hpp"

#include "core/error.hpp"
#include "kernels/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <string>

namespace apiary::averaging {

bool average_chunk(const ChunkInputs& inputs, std::span<float> out) {
  if (out.size() != inputs.count) throw Error(Errc::invalid_argument, "average_chunk: bad output");
  if (inputs.contributions.empty()) return false;
  double total_weight = 0;
  for (const auto& c : inputs.contributions) total_weight += c.weight;
  const bool uniform = !(total_weight > 0);
  // The first contribution initialises `out` (w·x, exactly as 0 + w·x would),
  // the others accumulate onto it: one pass fewer than zero-filling first.
  const auto& first = inputs.contributions.front();
  decode(first.contribution.codec, first.contribution.payload(), out);
  if (!uniform && first.weight != 1.0f) kernels::scale(out, first.weight);
  for (std::size_t i = 1; i < inputs.contributions.size(); ++i) {
    const auto& c = inputs.contributions[i];
    decode_accumulate(c.contribution.codec, c.contribution.payload(), uniform ? 1.0f : c.weight,
                      out);
  }
  const double denominator =
      uniform ? static_cast<double>(inputs.contributions.size()) : total_weight;
  kernels::scale(out, static_cast<float>(1.0 / denominator));
  return true;
}

PartReducer::PartReducer(const PartPlan& part, std::vector<float> weights,
                         std::vector<bool> expected)
    : part_(part),
      weights_(std::move(weights)),
      expected_(std::move(expected)),
      excluded_(weights_.size(), false),
      delivered_(weights_.size(), 0),
      chunks_(part.chunks.size()) {
  if (expected_.size() != weights_.size())
    throw Error(Errc::invalid_argument, "PartReducer: weights and expected differ in size");
  for (float w : weights_)
    if (!(w >= 0) || !std::isfinite(w))
      throw Error(Errc::invalid_argument, "PartReducer: weights must be finite and >= 0");
  const auto active =
      static_cast<std::size_t>(std::count(expected_.begin(), expected_.end(), true));
  for (auto& chunk : chunks_) {
    chunk.slots.resize(weights_.size());
    chunk.missing = active;
  }
}

void PartReducer::set_weight(std::size_t sender, float weight) {
  if (sender >= weights_.size()) throw Error(Errc::invalid_argument, "PartReducer: bad sender");
  if (!std::isfinite(weight) || weight < 0)
    throw Error(Errc::invalid_argument, "PartReducer: weights must be finite and >= 0");
  weights_[sender] = weight;
}

std::vector<std::size_t> PartReducer::add(std::size_t sender, std::size_t chunk,
                                          Contribution contribution) {
  if (sender >= weights_.size()) throw Error(Errc::invalid_argument, "PartReducer: bad sender");
  if (!expected_[sender]) throw Error(Errc::bad_message, "this peer contributes nothing");
  if (excluded_[sender]) return {};  // late data from an excluded sender is dropped
  if (chunk >= chunks_.size())
    throw Error(Errc::bad_message, "chunk index " + std::to_string(chunk) + " out of range");
  ChunkState& state = chunks_[chunk];
  if (state.slots[sender] || state.taken) throw Error(Errc::bad_message, "duplicate chunk");
  const std::size_t expected_bytes = encoded_size(contribution.codec, part_.chunks[chunk].count);
  if (contribution.payload().size() != expected_bytes)
    throw Error(Errc::bad_message, "chunk payload has " +
                                       std::to_string(contribution.payload().size()) +
                                       " bytes, expected " + std::to_string(expected_bytes));
  state.slots[sender] = std::move(contribution);
  ++delivered_[sender];
  if (--state.missing == 0) return {chunk};
  return {};
}

std::vector<std::size_t> PartReducer::exclude(std::size_t sender) {
  if (sender >= weights_.size()) throw Error(Errc::invalid_argument, "PartReducer: bad sender");
  if (!expected_[sender] || excluded_[sender]) return {};
  excluded_[sender] = true;
  std::vector<std::size_t> completed;
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    ChunkState& state = chunks_[c];
    if (state.taken) continue;
    if (state.slots[sender]) {
      state.slots[sender].reset();  // delivered but not yet reduced: dropped
    } else if (--state.missing == 0) {
      completed.push_back(c);
    }
  }
  return completed;
}

ChunkInputs PartReducer::take(std::size_t chunk) {
  ChunkState& state = chunks_.at(chunk);
  if (state.taken || state.missing != 0)
    throw Error(Errc::invalid_argument, "PartReducer: chunk is not complete");
  state.taken = true;
  ++taken_count_;
  ChunkInputs inputs;
  inputs.chunk = chunk;
  inputs.count = part_.chunks[chunk].count;
  for (std::size_t s = 0; s < state.slots.size(); ++s) {
    if (!state.slots[s]) continue;
    inputs.contributions.push_back({s, weights_[s], std::move(*state.slots[s])});
    state.slots[s].reset();
  }
  return inputs;
}

}  // namespace apiary::averaging
