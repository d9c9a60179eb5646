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
  // Several chunks per thread, taken from a shared counter: on a busy machine a
  // descheduled thread does not hold up the others. Chunk boundaries are
  // multiples of `align`, so per-block results do not depend on who runs what.
  constexpr std::size_t kChunksPerThread = 8;
  constexpr std::size_t kMinChunk = std::size_t{1} << 18;  // amortizes the hand-off
  std::size_t chunk =
      std::max(kMinChunk, (n + threads * kChunksPerThread - 1) / (threads * kChunksPerThread));
  chunk = (chunk + align - 1) / align * align;
  const std::size_t chunks = (n + chunk - 1) / chunk;
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, chunks));
  std::atomic<std::size_t> next_chunk{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&] {
    try {
      for (std::size_t c = next_chunk.fetch_add(1); c < chunks && !failed.load();
           c = next_chunk.fetch_add(1)) {
        const std::size_t begin = c * chunk;
        fn(begin, std::min(n, begin + chunk));
      }
    } catch (...) {
      failed.store(true);
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  for (unsigned t = 1; t < threads; ++t) workers.emplace_back(run);
  run();  // the calling thread works too
  for (auto& worker : workers) worker.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace detail
}  // namespace apiary::kernels
