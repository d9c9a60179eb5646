// libFuzzer target: the IDX data loader (nn/dataset.hpp) as load_idx_dataset
// reads an images file and a labels file (raw or gzip). The input's first two
// bytes give the images file's length (little endian); the rest of the input
// is the labels file. Only DatasetError may come out, and a header may not
// make the loader allocate more than the files can fill (-rss_limit_mb).
#include "fuzz_util.hpp"
#include "nn/dataset.hpp"

#include <algorithm>

using namespace apiary;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const ByteSpan rest(data + 2, size - 2);
  const std::size_t images_size = std::min<std::size_t>(data[0] | (data[1] << 8), rest.size());
  static const auto images = fuzz::scratch_file("idx_images");
  static const auto labels = fuzz::scratch_file("idx_labels");
  fuzz::write_file(images, rest.first(images_size));
  fuzz::write_file(labels, rest.subspan(images_size));
  fuzz::expect_only<nn::DatasetError>([&] {
    const nn::Dataset dataset = nn::load_idx_dataset(images, labels, 10);
    fuzz::require(dataset.images.size() == dataset.size() * dataset.features(), "sizes agree");
    for (std::int32_t label : dataset.labels) fuzz::require(label >= 0 && label < 10, "labels");
  });
  return 0;
}
