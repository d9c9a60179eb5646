#include "averaging/partition.hpp"

#include "core/error.hpp"

#include <gtest/gtest.h>

#include <vector>

using apiary::averaging::PartitionPlan;

TEST(Partition, ChunksCoverEveryElementOnceAndNeverSpanTensors) {
  std::vector<std::size_t> tensors{10, 3, 0, 25, 1};
  std::vector<std::size_t> parts{7, 0, 20, 12};
  PartitionPlan plan(tensors, parts, /*max_chunk_elements=*/4);
  ASSERT_EQ(plan.num_parts(), 4u);
  EXPECT_EQ(plan.total_elements(), 39u);
  std::size_t flat = 0;
  for (std::size_t p = 0; p < plan.num_parts(); ++p) {
    const auto& part = plan.part(p);
    EXPECT_EQ(part.flat_begin, flat);
    EXPECT_EQ(part.size(), parts[p]);
    for (const auto& chunk : part.chunks) {
      EXPECT_EQ(chunk.flat_offset, flat);
      EXPECT_GT(chunk.count, 0u);
      EXPECT_LE(chunk.count, 4u);
      EXPECT_LE(chunk.offset + chunk.count, tensors[chunk.tensor]);
      flat += chunk.count;
    }
    EXPECT_EQ(flat, part.flat_end);
  }
  EXPECT_EQ(flat, 39u);
  EXPECT_TRUE(plan.part(1).chunks.empty());
}

TEST(Partition, TensorSetViewsChunks) {
  std::vector<float> a(5), b(7);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(100 + i);
  apiary::averaging::TensorSet set({a, b});
  std::vector<std::size_t> parts{6, 6};
  PartitionPlan plan(set.sizes(), parts, 100);
  const auto& second = plan.part(1);
  ASSERT_EQ(second.chunks.size(), 1u);
  auto view = set.view(second.chunks[0]);
  EXPECT_EQ(view.size(), 6u);
  EXPECT_EQ(view[0], 101.0f);
  const auto& first = plan.part(0);
  ASSERT_EQ(first.chunks.size(), 2u);
  EXPECT_EQ(set.view(first.chunks[1])[0], 100.0f);
}

TEST(Partition, RejectsMismatchedParts) {
  std::vector<std::size_t> tensors{10};
  std::vector<std::size_t> parts{4, 5};
  EXPECT_THROW(PartitionPlan(tensors, parts), apiary::Error);
  std::vector<std::size_t> ok{10};
  EXPECT_THROW(PartitionPlan(tensors, ok, 0), apiary::Error);
}
