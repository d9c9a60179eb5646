#pragma once
// The reducer of one part in butterfly all-reduce: a pure state machine (no
// sockets, no clocks) fed with chunk contributions from the group's senders.
//
// Determinism: a chunk is reduced only once every expected sender has either
// delivered it or been excluded, and the contributions are then summed in
// sender order (the group's agreed order), never in arrival order, so the same
// inputs give bit-identical averages however the network interleaves them.
// Each chunk is the weighted average over the senders that contributed to it.
//
// Exclusion: a sender that fails, stalls or sends garbage is excluded; its
// contributions to chunks not yet reduced are dropped (chunks already reduced
// keep them), and chunks waiting only for it become complete.
//
// Errors: add() throws apiary::Error{bad_message} for a chunk index out of
// range, a duplicate chunk or a payload of the wrong size; the caller then
// excludes that sender. Everything else is invalid_argument (caller bugs).
#include "averaging/compression.hpp"
#include "averaging/partition.hpp"
#include "core/bytes.hpp"

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace apiary::averaging {

// One sender's encoded chunk. Either owns its bytes (from the wire) or views
// the reducer's own local values (its contribution to its own part).
struct Contribution {
  Codec codec = Codec::none;
  Bytes owned;  // the whole wire message, payload at payload_offset
  std::size_t payload_offset = 0;
  ByteSpan local;  // used when `owned` is empty
  ByteSpan payload() const {
    return owned.empty() ? local : ByteSpan(owned).subspan(payload_offset);
  }
};

struct WeightedContribution {
  std::size_t sender = 0;
  float weight = 0;
  Contribution contribution;
};

// What a complete chunk needs to be reduced, in sender order.
struct ChunkInputs {
  std::size_t chunk = 0;
  std::size_t count = 0;  // elements
  std::vector<WeightedContribution> contributions;
};

// Weighted average of the inputs (Σ wᵢxᵢ / Σ wᵢ in sender order; the plain mean
// when every weight is 0). Writes into `out` (count elements). Returns false
// when there are no contributions (out untouched). Pure compute.
bool average_chunk(const ChunkInputs& inputs, std::span<float> out);

class PartReducer {
 public:
  // `weights[s]` for each group member s; `expected[s]` is false for members
  // that contribute nothing (auxiliary peers).
  PartReducer(const PartPlan& part, std::vector<float> weights, std::vector<bool> expected);

  // A sender's weight (it travels in the sender's stream header); applies to
  // chunks taken afterwards. Throws invalid_argument unless finite and >= 0.
  void set_weight(std::size_t sender, float weight);
  std::size_t num_chunks() const noexcept { return chunks_.size(); }
  std::size_t num_senders() const noexcept { return weights_.size(); }
  bool is_active(std::size_t sender) const { return expected_.at(sender) && !excluded_.at(sender); }
  bool is_excluded(std::size_t sender) const { return excluded_.at(sender); }
  // Chunks that have all their contributions (and were not taken yet).
  // add()/exclude() return the chunks they completed.
  std::vector<std::size_t> add(std::size_t sender, std::size_t chunk, Contribution contribution);
  std::vector<std::size_t> exclude(std::size_t sender);
  // Moves the contributions of a complete chunk out; each chunk once.
  ChunkInputs take(std::size_t chunk);
  // Every chunk has been taken.
  bool finished() const noexcept { return taken_count_ == chunks_.size(); }
  // How many chunks `sender` has delivered so far.
  std::size_t delivered(std::size_t sender) const { return delivered_.at(sender); }

 private:
  struct ChunkState {
    std::vector<std::optional<Contribution>> slots;  // by sender
    std::size_t missing = 0;                         // active senders that have not delivered
    bool taken = false;
  };
  const PartPlan& part_;
  std::vector<float> weights_;
  std::vector<bool> expected_;
  std::vector<bool> excluded_;
  std::vector<std::size_t> delivered_;
  std::vector<ChunkState> chunks_;
  std::size_t taken_count_ = 0;
};

}  // namespace apiary::averaging
