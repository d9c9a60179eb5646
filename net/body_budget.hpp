#pragma once
// The bytes a TCP transport may allocate for frame bodies before they arrive
// (net/tcp_connection.hpp). A body its header announces is allocated whole
// while this budget lasts, so it is read in place with no copies; past the
// budget, its buffer starts small and grows with what arrived. A peer that
// announces large frames and stalls holds a share of this budget, not memory
// per announcement. Shared by a transport's connections; thread-safe.
#include <atomic>
#include <cstddef>
#include <memory>

namespace apiary {

class BodyBudget {
 public:
  explicit BodyBudget(std::size_t bytes) noexcept : left_(bytes) {}

  bool try_take(std::size_t bytes) noexcept {
    std::size_t left = left_.load(std::memory_order_relaxed);
    while (left >= bytes) {
      if (left_.compare_exchange_weak(left, left - bytes, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  void give_back(std::size_t bytes) noexcept { left_.fetch_add(bytes, std::memory_order_relaxed); }
  std::size_t left() const noexcept { return left_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> left_;
};

// A share of a BodyBudget, given back when it goes out of scope; empty (false)
// when the budget could not cover it.
class BodyReservation {
 public:
  BodyReservation() = default;
  BodyReservation(std::shared_ptr<BodyBudget> budget, std::size_t bytes) noexcept {
    if (budget && budget->try_take(bytes)) {
      budget_ = std::move(budget);
      bytes_ = bytes;
    }
  }
  ~BodyReservation() {
    if (budget_) budget_->give_back(bytes_);
  }
  BodyReservation(const BodyReservation&) = delete;
  BodyReservation& operator=(const BodyReservation&) = delete;

  explicit operator bool() const noexcept { return budget_ != nullptr; }

 private:
  std::shared_ptr<BodyBudget> budget_;
  std::size_t bytes_ = 0;
};

}  // namespace apiary
