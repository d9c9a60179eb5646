#pragma once
// Fashion-MNIST (60 000 training and 10 000 test images, 28×28, 10 classes) from
// the Debian package dataset-fashion-mnist. Errors: nn::DatasetError; when the
// files are missing the message says how to install the package.
#include "nn/dataset.hpp"

#include <string>

namespace apiary::nn {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

enum class Split { train, test };

// `dir` holds {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
Dataset load_fashion_mnist(Split split, const std::string& dir = kFashionMnistDir);
bool fashion_mnist_available(const std::string& dir = kFashionMnistDir);

}  // namespace apiary::nn
