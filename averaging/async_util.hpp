#pragma once
// Small coroutine helpers for averaging/ protocol code (one executor, no locks).
//
// Signal: a broadcast wake-up. Waiters re-check their condition after every
//   wake-up, so a notify with nobody waiting is harmless (single thread: no
//   window between checking and waiting).
// TaskGroup: spawns coroutines on an executor and waits until all of them end
//   (exceptions inside tasks are the tasks' business and are swallowed here).
// run_compute: runs a function on the compute executor (a worker pool) and
//   resumes the caller on its own executor; inline when there is no pool.
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace apiary::averaging::detail {

using Clock = std::chrono::steady_clock;

class Signal {
 public:
  explicit Signal(const asio::any_io_executor& executor) : executor_(executor) {}
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  void notify_all() noexcept {
    for (auto* timer : waiters_) timer->cancel();
  }
  // Returns at a notify or at `deadline`, whichever comes first.
  asio::awaitable<void> wait_until(Clock::time_point deadline) {
    asio::steady_timer timer(executor_, deadline);
    waiters_.push_back(&timer);
    struct Unregister {
      std::vector<asio::steady_timer*>& waiters;
      asio::steady_timer* timer;
      ~Unregister() { std::erase(waiters, timer); }
    } unregister{waiters_, &timer};
    std::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }

 private:
  asio::any_io_executor executor_;
  std::vector<asio::steady_timer*> waiters_;  // each waiter's own timer, alive while it waits
};

class TaskGroup {
 public:
  explicit TaskGroup(const asio::any_io_executor& executor)
      : executor_(executor), state_(std::make_shared<State>(executor)) {}

  void spawn(asio::awaitable<void> task) {
    ++state_->pending;
    asio::co_spawn(executor_, std::move(task), [state = state_](std::exception_ptr) {
      if (--state->pending == 0) state->done.notify_all();
    });
  }
  std::size_t pending() const noexcept { return state_->pending; }
  asio::awaitable<void> wait() {
    auto state = state_;
    while (state->pending > 0) co_await state->done.wait_until(Clock::time_point::max());
  }

 private:
  struct State {
    explicit State(const asio::any_io_executor& executor) : done(executor) {}
    std::size_t pending = 0;
    Signal done;
  };
  asio::any_io_executor executor_;
  std::shared_ptr<State> state_;
};

template <typename Fn>
asio::awaitable<void> run_compute(const std::optional<asio::any_io_executor>& compute, Fn& fn) {
  if (!compute) {
    fn();
    co_return;
  }
  co_await asio::co_spawn(
      *compute,
      [&fn]() -> asio::awaitable<void> {
        fn();
        co_return;
      },
      asio::use_awaitable);
}

}  // namespace apiary::averaging::detail
