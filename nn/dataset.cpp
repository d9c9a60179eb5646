#include "nn/dataset.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <memory>
#include <numeric>
#include <random>

namespace apiary::nn {

namespace {
constexpr std::uint32_t kMaxItems = 10'000'000;
constexpr std::uint32_t kMaxSide = 4096;
constexpr std::size_t kMaxBytes = std::size_t{1} << 31;

struct GzCloser {
  void operator()(gzFile_s* f) const noexcept { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

class IdxReader {
 public:
  explicit IdxReader(std::string path) : path_(std::move(path)) {
    file_.reset(gzopen(path_.c_str(), "rb"));
    if (!file_) throw DatasetError(path_ + ": cannot open");
  }

  void read_exact(void* dst, std::size_t bytes, const char* what) {
    auto* out = static_cast<unsigned char*>(dst);
    while (bytes > 0) {
      unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(bytes, 1u << 30));
      int got = gzread(file_.get(), out, chunk);
      if (got < 0) {
        int code = 0;
        const char* message = gzerror(file_.get(), &code);
        throw DatasetError(path_ + ": corrupt gzip data (" + std::string(message) + ")");
      }
      if (got == 0) throw DatasetError(path_ + ": truncated while reading " + what);
      out += got;
      bytes -= static_cast<std::size_t>(got);
    }
  }

  std::uint32_t read_be32(const char* what) {
    std::array<unsigned char, 4> b{};
    read_exact(b.data(), b.size(), what);
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
           std::uint32_t{b[3]};
  }

  // Reads the magic and dimensions; requires ubyte data with `dims` dimensions.
  std::vector<std::uint32_t> read_header(std::uint32_t dims) {
    std::uint32_t magic = read_be32("the magic number");
    std::uint32_t expected = 0x00000800u | dims;
    if (magic != expected) {
      char text[64];
      std::snprintf(text, sizeof text, "bad magic 0x%08x (expected 0x%08x)", magic, expected);
      throw DatasetError(path_ + ": " + text);
    }
    std::vector<std::uint32_t> shape(dims);
    for (auto& d : shape) d = read_be32("the dimensions");
    return shape;
  }

  // After the payload: the file must end here (a longer file is not this format).
  void expect_end() {
    unsigned char extra = 0;
    int got = gzread(file_.get(), &extra, 1);
    if (got < 0) throw DatasetError(path_ + ": corrupt gzip data at the end");
    if (got > 0) throw DatasetError(path_ + ": unexpected bytes after the data");
  }

  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  GzFile file_;
};
}  // namespace

Dataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                         std::size_t classes) {
  if (classes == 0 || classes > 256) throw std::invalid_argument("classes must be in [1, 256]");
  IdxReader images(images_path);
  auto image_shape = images.read_header(3);
  const std::uint32_t count = image_shape[0], rows = image_shape[1], cols = image_shape[2];
  if (count == 0 || count > kMaxItems || rows == 0 || rows > kMaxSide || cols == 0 ||
      cols > kMaxSide || std::size_t{count} * rows * cols > kMaxBytes) {
    throw DatasetError(images_path + ": implausible dimensions " + std::to_string(count) + "×" +
                       std::to_string(rows) + "×" + std::to_string(cols));
  }
  IdxReader labels(labels_path);
  auto label_shape = labels.read_header(1);
  if (label_shape[0] != count) {
    throw DatasetError(labels_path + ": " + std::to_string(label_shape[0]) + " labels for " +
                       std::to_string(count) + " images");
  }

  Dataset data;
  data.rows = rows;
  data.cols = cols;
  data.classes = classes;
  std::vector<std::uint8_t> pixels(std::size_t{count} * rows * cols);
  images.read_exact(pixels.data(), pixels.size(), "pixels");
  images.expect_end();
  std::vector<std::uint8_t> raw_labels(count);
  labels.read_exact(raw_labels.data(), raw_labels.size(), "labels");
  labels.expect_end();

  data.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (raw_labels[i] >= classes) {
      throw DatasetError(labels_path + ": label " + std::to_string(raw_labels[i]) + " at index " +
                         std::to_string(i) + " outside [0, " + std::to_string(classes) + ")");
    }
    data.labels[i] = raw_labels[i];
  }
  data.images.resize(pixels.size());
  constexpr float kInv255 = 1.0f / 255.0f;
  for (std::size_t i = 0; i < pixels.size(); ++i) data.images[i] = pixels[i] * kInv255;
  return data;
}

BatchIterator::BatchIterator(const Dataset& data, std::size_t batch_size, std::uint64_t seed,
                             bool drop_last)
    : data_(data), batch_size_(batch_size), seed_(seed), drop_last_(drop_last) {
  if (batch_size == 0) throw std::invalid_argument("BatchIterator: batch_size must be > 0");
  start_epoch(0);
}

void BatchIterator::start_epoch(std::uint64_t epoch) {
  order_.resize(data_.size());
  std::iota(order_.begin(), order_.end(), 0u);
  // Seeded per (peer seed, epoch); std::shuffle's algorithm is implementation-
  // defined, so use an explicit Fisher–Yates for the same order on every platform.
  std::mt19937_64 rng(seed_ * 0x9e3779b97f4a7c15ull + epoch);
  for (std::size_t i = order_.size(); i > 1; --i) {
    std::size_t j = rng() % i;
    std::swap(order_[i - 1], order_[j]);
  }
  position_ = 0;
}

std::size_t BatchIterator::batches_per_epoch() const noexcept {
  return drop_last_ ? data_.size() / batch_size_ : (data_.size() + batch_size_ - 1) / batch_size_;
}

bool BatchIterator::next(Batch& batch) {
  std::size_t remaining = order_.size() - position_;
  if (remaining == 0 || (drop_last_ && remaining < batch_size_)) return false;
  std::size_t n = std::min(batch_size_, remaining);
  const std::size_t features = data_.features();
  if (!batch.images.owns_storage() || batch.images.shape() != Shape{n, features}) {
    batch.images = Tensor::empty({n, features});
  }
  batch.labels.resize(n);
  float* dst = batch.images.span<float>().data();
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t index = order_[position_ + i];
    std::copy_n(data_.images.data() + std::size_t{index} * features, features, dst + i * features);
    batch.labels[i] = data_.labels[index];
  }
  position_ += n;
  return true;
}

}  // namespace apiary::nn
