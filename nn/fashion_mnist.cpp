#include "nn/fashion_mnist.hpp"

#include <filesystem>

namespace apiary::nn {

namespace {
struct Paths {
  std::string images, labels;
};
Paths paths_for(Split split, const std::string& dir) {
  const std::string prefix = dir + (split == Split::train ? "/train" : "/t10k");
  return {prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz"};
}
}  // namespace

bool fashion_mnist_available(const std::string& dir) {
  for (Split split : {Split::train, Split::test}) {
    Paths p = paths_for(split, dir);
    if (!std::filesystem::exists(p.images) || !std::filesystem::exists(p.labels)) return false;
  }
  return true;
}

Dataset load_fashion_mnist(Split split, const std::string& dir) {
  Paths p = paths_for(split, dir);
  for (const auto& path : {p.images, p.labels}) {
    if (!std::filesystem::exists(path)) {
      throw DatasetError("Fashion-MNIST file " + path +
                         " not found; install it with: apt-get install dataset-fashion-mnist");
    }
  }
  Dataset data = load_idx_dataset(p.images, p.labels, 10);
  if (data.rows != 28 || data.cols != 28) {
    throw DatasetError(p.images + ": expected 28×28 images, got " + std::to_string(data.rows) +
                       "×" + std::to_string(data.cols));
  }
  return data;
}

}  // namespace apiary::nn
