#include "kernels/parallel.hpp"

#include "kernels/reduce.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace apiary::kernels {

namespace {
unsigned default_threads() {
  unsigned hw = std::thread::hardware_concurrency();
  return std::clamp(hw == 0 ? 1u : hw, 1u, 8u);
}
std::atomic<unsigned>& thread_setting() {
  static std::atomic<unsigned> threads{default_threads()};
  return threads;
}
}  // namespace

void set_cpu_threads(unsigned threads) {
  thread_setting().store(std::max(1u, threads));
}
unsigned cpu_threads() {
  return thread_setting().load();
}

namespace detail {

void parallel_for(std::size_t n, std::size_t min_parallel, std::size_t align,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
  if (align == 0) align = 1;
  unsigned threads = cpu_threads();
  if (threads <= 1 || n < min_parallel || n == 0) {
    fn(0, n);
    return;
  }
  // Chunk size rounded up to `align` so chunk boundaries fall on block boundaries.
  std::size_t chunk = (n + threads - 1) / threads;
  chunk = (chunk + align - 1) / align * align;
  std::vector<std::thread> workers;
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&](std::size_t begin, std::size_t end) {
    try {
      fn(begin, end);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::size_t first_end = std::min(n, chunk);
  for (std::size_t begin = first_end; begin < n; begin += chunk) {
    workers.emplace_back(run, begin, std::min(n, begin + chunk));
  }
  run(0, first_end);  // the calling thread takes the first chunk
  for (auto& worker : workers) worker.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace detail
}  // namespace apiary::kernels
