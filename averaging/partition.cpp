#include "averaging/partition.hpp"

#include "core/error.hpp"

#include <algorithm>
#include <numeric>

namespace apiary::averaging {

PartitionPlan::PartitionPlan(std::vector<std::size_t> tensor_sizes,
                             std::span<const std::size_t> part_sizes,
                             std::size_t max_chunk_elements)
    : tensor_sizes_(std::move(tensor_sizes)), max_chunk_(max_chunk_elements) {
  if (max_chunk_ == 0) throw Error(Errc::invalid_argument, "partition: chunk size must be > 0");
  total_ = std::accumulate(tensor_sizes_.begin(), tensor_sizes_.end(), std::size_t{0});
  const std::size_t parts_total =
      std::accumulate(part_sizes.begin(), part_sizes.end(), std::size_t{0});
  if (parts_total != total_)
    throw Error(Errc::invalid_argument, "partition: part sizes sum to " +
                                            std::to_string(parts_total) + ", tensors hold " +
                                            std::to_string(total_));
  // Walk the tensors and the parts together.
  std::size_t tensor = 0;
  std::size_t tensor_begin = 0;  // flat offset where `tensor` starts
  std::size_t flat = 0;
  parts_.reserve(part_sizes.size());
  for (std::size_t part_size : part_sizes) {
    PartPlan part;
    part.flat_begin = flat;
    part.flat_end = flat + part_size;
    while (flat < part.flat_end) {
      while (tensor_begin + tensor_sizes_[tensor] <= flat) tensor_begin += tensor_sizes_[tensor++];
      const std::size_t tensor_end = tensor_begin + tensor_sizes_[tensor];
      const std::size_t count = std::min({max_chunk_, part.flat_end - flat, tensor_end - flat});
      part.chunks.push_back({static_cast<std::uint32_t>(tensor), flat - tensor_begin, count, flat});
      flat += count;
    }
    parts_.push_back(std::move(part));
  }
}

std::vector<std::size_t> TensorSet::sizes() const {
  std::vector<std::size_t> result;
  result.reserve(tensors_.size());
  for (const auto& t : tensors_) result.push_back(t.size());
  return result;
}

}  // namespace apiary::averaging
