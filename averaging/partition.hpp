#pragma once
// Partitioning of a list of fp32 tensors for butterfly all-reduce.
//
// The tensors are viewed as one flat vector (tensor 0 first). The vector is cut
// into one contiguous part per group member (sizes from load_balancing.hpp);
// each part is cut again into chunks, the unit that travels on the wire. A
// chunk never spans two tensors, so every chunk uses its tensor's codec, and
// is at most `max_chunk_elements` long. Every peer computes the same plan from
// the same (tensor sizes, part sizes, chunk size), so chunks are named by
// (part, index) alone.
//
// Errors: throws apiary::Error{invalid_argument} when part sizes do not sum to
// the total or the chunk size is 0.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace apiary::averaging {

struct ChunkRange {
  std::uint32_t tensor = 0;     // which tensor
  std::size_t offset = 0;       // first element inside that tensor
  std::size_t count = 0;        // elements
  std::size_t flat_offset = 0;  // first element in the flattened vector
};

struct PartPlan {
  std::size_t flat_begin = 0;
  std::size_t flat_end = 0;
  std::vector<ChunkRange> chunks;
  std::size_t size() const { return flat_end - flat_begin; }
};

class PartitionPlan {
 public:
  // 512 KiB of fp32 per chunk by default.
  static constexpr std::size_t default_chunk_elements = (512u << 10) / sizeof(float);

  PartitionPlan(std::vector<std::size_t> tensor_sizes, std::span<const std::size_t> part_sizes,
                std::size_t max_chunk_elements = default_chunk_elements);

  std::size_t total_elements() const noexcept { return total_; }
  std::size_t num_parts() const noexcept { return parts_.size(); }
  const PartPlan& part(std::size_t index) const { return parts_.at(index); }
  const std::vector<std::size_t>& tensor_sizes() const noexcept { return tensor_sizes_; }
  std::size_t max_chunk_elements() const noexcept { return max_chunk_; }

 private:
  std::vector<std::size_t> tensor_sizes_;
  std::vector<PartPlan> parts_;
  std::size_t total_ = 0;
  std::size_t max_chunk_ = 0;
};

// A set of fp32 tensors (borrowed; the caller keeps them alive) addressed by chunk.
class TensorSet {
 public:
  explicit TensorSet(std::vector<std::span<float>> tensors) : tensors_(std::move(tensors)) {}
  std::vector<std::size_t> sizes() const;
  std::span<float> view(const ChunkRange& chunk) const {
    return tensors_.at(chunk.tensor).subspan(chunk.offset, chunk.count);
  }
  std::span<float> tensor(std::size_t index) const { return tensors_.at(index); }
  std::size_t num_tensors() const noexcept { return tensors_.size(); }

 private:
  std::vector<std::span<float>> tensors_;
};

}  // namespace apiary::averaging
