// tune_allocator_for_large_buffers(): callable more than once, and where glibc
// is the allocator a block far above its default mmap threshold (128 KiB)
// then comes from the heap, so freeing it does not return it to the kernel.
#include "core/memory_tuning.hpp"

#include <gtest/gtest.h>

#include <vector>

#if __has_include(<malloc.h>)
#include <malloc.h>
#endif

TEST(MemoryTuning, CallableTwiceAndKeepsLargeBlocksOnTheHeap) {
  const bool applied = apiary::tune_allocator_for_large_buffers();
  EXPECT_EQ(apiary::tune_allocator_for_large_buffers(), applied);
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD)
  EXPECT_TRUE(applied);
  const auto mmapped_blocks = mallinfo2().hblks;
  std::vector<char> buffer(8 << 20, 1);
  EXPECT_EQ(mallinfo2().hblks, mmapped_blocks) << "an 8 MiB buffer was mmapped";
  EXPECT_EQ(buffer[buffer.size() / 2], 1);
#else
  EXPECT_FALSE(applied);
#endif
}
