#pragma once
// Labelled image data sets in IDX format (the MNIST family), gzip'd or plain,
// read through zlib; and a seeded mini-batch iterator.
//
// Every file is checked strictly: magic number (type 0x08 = ubyte, dimension
// count), dimensions (non-zero, within limits), exact data size (a truncated
// or over-long file is rejected), matching image/label counts and the label
// range. Failures throw DatasetError naming the file and the problem.
#include "nn/tensor.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace apiary::nn {

class DatasetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Dataset {
  std::size_t rows = 0, cols = 0;  // image height and width
  std::size_t classes = 0;
  std::vector<float> images;         // size() × rows·cols, normalized to [0, 1]
  std::vector<std::int32_t> labels;  // size(), each in [0, classes)
  std::size_t size() const noexcept { return labels.size(); }
  std::size_t features() const noexcept { return rows * cols; }
};

// Reads an images file (IDX3, ubyte) and a labels file (IDX1, ubyte).
Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         std::size_t classes);

struct Batch {
  Tensor images;                     // f32 [batch × features] on the host
  std::vector<std::int32_t> labels;  // batch
};

// Visits the data set in mini-batches, in an order shuffled per epoch from
// (seed, epoch): different peers pass different seeds and so see different
// orders; the same seed always gives the same order. The last partial batch is
// returned unless drop_last.
class BatchIterator {
 public:
  BatchIterator(const Dataset& data, std::size_t batch_size, std::uint64_t seed,
                bool drop_last = false);
  // Starts epoch `epoch` (reshuffles). The constructor starts epoch 0.
  void start_epoch(std::uint64_t epoch);
  // Fills `batch` with the next mini-batch; false at the end of the epoch.
  bool next(Batch& batch);
  std::size_t batches_per_epoch() const noexcept;

 private:
  const Dataset& data_;
  std::size_t batch_size_;
  std::uint64_t seed_;
  bool drop_last_;
  std::vector<std::uint32_t> order_;
  std::size_t position_ = 0;
};

}  // namespace apiary::nn
