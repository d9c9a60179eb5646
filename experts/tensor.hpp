#pragma once
// The tensors experts exchange: a batch of fp32 samples in host memory,
// row-major, the first dimension being the batch ("rows"). A TensorSchema
// declares the per-sample shape an expert accepts or returns; check() turns a
// mismatch into Error{invalid_argument} naming the expected and actual shapes.
// Errors: throws apiary::Error.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace apiary::experts {

inline constexpr std::size_t kMaxTensorRank = 8;

struct HostTensor {
  std::vector<std::size_t> shape;  // [batch, …sample dims]
  std::vector<float> values;

  HostTensor() = default;
  HostTensor(std::vector<std::size_t> shape_, std::vector<float> values_);
  // Zero-filled tensor of `shape`.
  static HostTensor zeros(std::vector<std::size_t> shape_);
  // Values drawn from N(0, stddev²) by a generator seeded with `seed` (tests, benchmarks).
  static HostTensor normal(std::vector<std::size_t> shape_, std::uint64_t seed,
                           float stddev = 1.0f);

  std::size_t rows() const noexcept { return shape.empty() ? 0 : shape.front(); }
  // Elements per sample (product of the non-batch dims).
  std::size_t row_size() const noexcept;
  std::span<float> row(std::size_t r) { return {values.data() + r * row_size(), row_size()}; }
  std::span<const float> row(std::size_t r) const {
    return {values.data() + r * row_size(), row_size()};
  }
};

// "[3, 1024]"
std::string shape_to_string(std::span<const std::size_t> shape);
std::size_t shape_elements(std::span<const std::size_t> shape);

enum class DType : std::uint8_t { float32 = 0 };

struct TensorSchema {
  std::vector<std::size_t> sample_shape;  // without the batch dimension
  DType dtype = DType::float32;

  std::size_t sample_elements() const noexcept { return shape_elements(sample_shape); }
  // Throws Error{invalid_argument, "<what>: expected shape [*, 1024] float32, got [3, 512]"}
  // when `tensor` is not a batch of samples of this shape (or its buffer size is wrong).
  void check(const HostTensor& tensor, std::string_view what) const;
  // Same check against a shape only.
  void check_shape(std::span<const std::size_t> shape, std::string_view what) const;
  std::string to_string() const;  // "[*, 1024] float32"
  bool operator==(const TensorSchema&) const = default;
};

struct ExpertSchema {
  TensorSchema input;
  TensorSchema output;
  bool operator==(const ExpertSchema&) const = default;
};

// Stacks the rows of several batches with equal sample shapes into one batch.
HostTensor concat_rows(std::span<const HostTensor* const> parts);
// Rows [begin, begin + count) as a new tensor.
HostTensor slice_rows(const HostTensor& tensor, std::size_t begin, std::size_t count);

}  // namespace apiary::experts
