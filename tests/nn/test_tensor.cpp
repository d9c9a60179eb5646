#include "nn/parameters.hpp"
#include "nn/tensor.hpp"

#include <gtest/gtest.h>

using namespace apiary::nn;

TEST(Tensor, OwningViewsShareStorage) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
  EXPECT_EQ(t.numel(), 6u);
  EXPECT_EQ(t.size_bytes(), 24u);
  EXPECT_TRUE(t.owns_storage());
  Tensor r = t.reshape({2, 3});
  r.span<float>()[0] = 10.0f;
  EXPECT_EQ(t.span<float>()[0], 10.0f);
  Tensor middle = t.rows(1, 2);
  EXPECT_EQ(middle.shape(), (Shape{1, 2}));
  EXPECT_EQ(middle.to_vector(), (std::vector<float>{3, 4}));
  Tensor copy = t.to(Device::cpu);
  copy.span<float>()[1] = -1.0f;
  EXPECT_EQ(t.span<float>()[1], 2.0f);  // deep copy
  EXPECT_THROW(t.reshape({4, 2}), std::invalid_argument);
  EXPECT_THROW(t.rows(2, 4), std::invalid_argument);
  EXPECT_THROW(t.span<std::int32_t>(), std::invalid_argument);
  Tensor z = Tensor::zeros({4}, DType::i32);
  for (auto v : z.span<std::int32_t>()) EXPECT_EQ(v, 0);
}

TEST(Tensor, NonOwningView) {
  std::vector<float> data = {1, 2, 3};
  Tensor v = Tensor::view(data.data(), {3}, DType::f32, Device::cpu);
  EXPECT_FALSE(v.owns_storage());
  v.span<float>()[2] = 7.0f;
  EXPECT_EQ(data[2], 7.0f);
  Tensor other = Tensor::from_vector({9, 9, 9}, {3});
  v.copy_from(other);
  EXPECT_EQ(data, (std::vector<float>{9, 9, 9}));
  EXPECT_THROW(v.copy_from(Tensor::from_vector({1}, {1})), std::invalid_argument);
}

TEST(ParameterRegistry, FlatBuffersBackEveryParameter) {
  ParameterRegistry registry;
  std::size_t w = registry.declare("w", {2, 3});
  std::size_t b = registry.declare("b", {3});
  EXPECT_THROW(registry.declare("w", {1}), std::invalid_argument);
  EXPECT_THROW(registry.parameter(w), std::logic_error);
  registry.finalize();
  EXPECT_THROW(registry.declare("late", {1}), std::logic_error);
  EXPECT_EQ(registry.total_size(), 9u);
  auto flat = registry.flat_parameters();
  for (float v : flat) EXPECT_EQ(v, 0.0f);
  registry.parameter(b).span<float>()[1] = 5.0f;
  EXPECT_EQ(flat[7], 5.0f);  // b starts after w's 6 elements
  registry.gradient(w).span<float>()[0] = 3.0f;
  EXPECT_EQ(registry.flat_gradients()[0], 3.0f);
  registry.zero_gradients();
  EXPECT_EQ(registry.flat_gradients()[0], 0.0f);
  auto slices = registry.slices();
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(slices[1].offset, 6u);
  EXPECT_EQ(slices[1].size, 3u);
  EXPECT_EQ(registry.find("b"), b);
  EXPECT_THROW(registry.find("nope"), std::invalid_argument);
}
