#pragma once
// Internal to kernels/: splits [0, n) into contiguous chunks (a few per thread,
// handed out through a shared counter) run on short-lived threads. Chunk
// boundaries are multiples of `align`, so per-block work never straddles
// threads and results do not depend on the split.
#include <cstddef>
#include <functional>

namespace apiary::kernels::detail {

// Calls fn(begin, end) over a partition of [0, n), possibly several times per thread. Runs inline
// when n < min_parallel or only one thread is configured. Exceptions from workers are rethrown.
void parallel_for(std::size_t n, std::size_t min_parallel, std::size_t align,
                  const std::function<void(std::size_t, std::size_t)>& fn);

}  // namespace apiary::kernels::detail
