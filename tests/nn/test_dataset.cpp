#include "nn/dataset.hpp"
#include "nn/fashion_mnist.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <set>

using namespace apiary::nn;

namespace {
namespace fs = std::filesystem;

void put_be32(std::vector<unsigned char>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<unsigned char>(v >> shift));
}

void write_gz(const fs::path& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  gzclose(f);
}

std::vector<unsigned char> images_file(std::uint32_t count, std::uint32_t rows,
                                       std::uint32_t cols) {
  std::vector<unsigned char> out;
  put_be32(out, 0x00000803);
  put_be32(out, count);
  put_be32(out, rows);
  put_be32(out, cols);
  for (std::uint32_t i = 0; i < count * rows * cols; ++i)
    out.push_back(static_cast<unsigned char>(i * 37));
  return out;
}

std::vector<unsigned char> labels_file(std::vector<unsigned char> labels) {
  std::vector<unsigned char> out;
  put_be32(out, 0x00000801);
  put_be32(out, static_cast<std::uint32_t>(labels.size()));
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("apiary_idx_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }

  // Loads with the given images bytes and valid labels, returning the error text.
  std::string error_for(const std::vector<unsigned char>& images,
                        const std::vector<unsigned char>& labels) {
    write_gz(path("img.gz"), images);
    write_gz(path("lbl.gz"), labels);
    try {
      load_idx_dataset(path("img.gz"), path("lbl.gz"), 10);
    } catch (const DatasetError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};
}  // namespace

TEST_F(IdxFiles, ReadsATinyDataSet) {
  write_gz(path("img.gz"), images_file(3, 2, 2));
  write_gz(path("lbl.gz"), labels_file({4, 0, 9}));
  Dataset data = load_idx_dataset(path("img.gz"), path("lbl.gz"), 10);
  ASSERT_EQ(data.size(), 3u);
  EXPECT_EQ(data.rows, 2u);
  EXPECT_EQ(data.features(), 4u);
  EXPECT_EQ(data.labels, (std::vector<std::int32_t>{4, 0, 9}));
  ASSERT_EQ(data.images.size(), 12u);
  EXPECT_FLOAT_EQ(data.images[1], 37.0f / 255.0f);
  for (float v : data.images) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 1.0f);
  }
}

TEST_F(IdxFiles, RejectsCorruptTruncatedAndInconsistentFiles) {
  auto good_images = images_file(3, 2, 2);
  auto good_labels = labels_file({1, 2, 3});

  auto bad_magic = good_images;
  bad_magic[3] = 0x02;
  EXPECT_NE(error_for(bad_magic, good_labels).find("bad magic"), std::string::npos);

  auto truncated = good_images;
  truncated.resize(truncated.size() - 3);
  EXPECT_NE(error_for(truncated, good_labels).find("truncated"), std::string::npos);

  auto header_only = good_images;
  header_only.resize(6);
  EXPECT_NE(error_for(header_only, good_labels).find("truncated"), std::string::npos);

  auto longer = good_images;
  longer.push_back(0);
  EXPECT_NE(error_for(longer, good_labels).find("after the data"), std::string::npos);

  EXPECT_NE(error_for(images_file(0, 2, 2), labels_file({})).find("implausible"),
            std::string::npos);
  EXPECT_NE(error_for(good_images, labels_file({1, 2})).find("labels for"), std::string::npos);
  EXPECT_NE(error_for(good_images, labels_file({1, 10, 3})).find("outside"), std::string::npos);

  // A gzip stream with a damaged body.
  write_gz(path("img.gz"), good_images);
  {
    std::FILE* f = std::fopen(path("img.gz").c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, 12, SEEK_SET);
    unsigned char junk[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    std::fwrite(junk, 1, sizeof junk, f);
    std::fclose(f);
  }
  write_gz(path("lbl.gz"), good_labels);
  EXPECT_THROW(load_idx_dataset(path("img.gz"), path("lbl.gz"), 10), DatasetError);

  EXPECT_THROW(load_idx_dataset(path("missing.gz"), path("lbl.gz"), 10), DatasetError);
}

TEST_F(IdxFiles, MissingFashionMnistNamesThePackage) {
  EXPECT_FALSE(fashion_mnist_available(dir_.string()));
  try {
    load_fashion_mnist(Split::train, dir_.string());
    FAIL() << "expected DatasetError";
  } catch (const DatasetError& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install dataset-fashion-mnist"),
              std::string::npos);
  }
}

TEST(BatchIterator, SeededShufflingCoversEveryExampleOnce) {
  Dataset data;
  data.rows = 1;
  data.cols = 2;
  data.classes = 100;
  for (int i = 0; i < 10; ++i) {
    data.labels.push_back(i);
    data.images.push_back(float(i));
    data.images.push_back(float(i) + 0.5f);
  }
  auto epoch_order = [&](std::uint64_t seed, std::uint64_t epoch) {
    BatchIterator it(data, 4, seed);
    it.start_epoch(epoch);
    std::vector<std::int32_t> order;
    Batch batch;
    std::vector<std::size_t> sizes;
    while (it.next(batch)) {
      sizes.push_back(batch.labels.size());
      for (std::size_t i = 0; i < batch.labels.size(); ++i) {
        EXPECT_EQ(batch.images.span<float>()[2 * i], float(batch.labels[i]));  // rows stay paired
        order.push_back(batch.labels[i]);
      }
    }
    EXPECT_EQ(sizes, (std::vector<std::size_t>{4, 4, 2}));
    return order;
  };
  auto a = epoch_order(1, 0);
  EXPECT_EQ(std::set<std::int32_t>(a.begin(), a.end()).size(), 10u);
  EXPECT_EQ(epoch_order(1, 0), a);  // same seed, same order
  EXPECT_NE(epoch_order(2, 0), a);  // another peer
  EXPECT_NE(epoch_order(1, 1), a);  // another epoch
  BatchIterator drop(data, 4, 0, /*drop_last=*/true);
  EXPECT_EQ(drop.batches_per_epoch(), 2u);
  EXPECT_THROW(BatchIterator(data, 0, 0), std::invalid_argument);
}
