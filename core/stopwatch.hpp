#pragma once
// Wall time measured on the steady clock, in seconds (for durations reported
// in logs, metrics and benchmarks). No errors.
#include <chrono>

namespace apiary {

inline double seconds_since(std::chrono::steady_clock::time_point start) noexcept {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace apiary
