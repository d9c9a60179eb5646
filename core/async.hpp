#pragma once
// The coroutine toolkit of the library (one executor per peer, no locks).
//
// Event: a one-waiter wake-up that remembers a notify() made before the wait,
//   so no wake-up is lost; honours asio per-operation cancellation (e.g. from
//   awaitable_operators `||`) by throwing Error{cancelled}.
// Signal: a broadcast wake-up. Waiters re-check their condition after every
//   wake-up, so a notify with nobody waiting is harmless (single thread: no
//   window between checking and waiting). Never throws.
// TaskGroup: spawns coroutines on an executor and waits until all of them
//   end; exceptions inside tasks are the tasks' business and are swallowed.
// run_concurrently: starts tasks on the current executor and returns once all
//   of them completed (a TaskGroup in one call).
// sleep_for / sleep_until: wait on the current executor (never throw).
// race_deadline: runs an operation against a timer; nullopt when time wins.
// run_compute: runs a function on a compute executor (a worker pool) and
//   resumes the caller on its own executor; inline when there is no pool.
// Deadlines are core/clock.hpp's Deadline (steady-clock time points).
#include "core/clock.hpp"
#include "core/error.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace apiary::async {

class Event {
 public:
  explicit Event(const asio::any_io_executor& executor) : timer_(executor) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Wakes the waiter (or the next wait, if none is waiting yet).
  void notify() noexcept {
    notified_ = true;
    timer_.cancel();
  }

  // True when notified, false when `deadline` passed first. Consumes the notification.
  asio::awaitable<bool> wait_until(Deadline deadline) {
    if (!notified_) {
      timer_.expires_at(deadline);
      std::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!notified_) {
        if (ec == asio::error::operation_aborted)
          throw Error(Errc::cancelled, "operation cancelled");
        co_return false;
      }
    }
    notified_ = false;
    co_return true;
  }

  asio::awaitable<void> wait() { co_await wait_until(Deadline::max()); }

 private:
  asio::steady_timer timer_;
  bool notified_ = false;
};

class Signal {
 public:
  explicit Signal(const asio::any_io_executor& executor) : executor_(executor) {}
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  void notify_all() noexcept {
    for (auto* timer : waiters_) timer->cancel();
  }
  // Returns at a notify or at `deadline`, whichever comes first.
  asio::awaitable<void> wait_until(Deadline deadline) {
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
  asio::awaitable<void> wait() { co_await wait_until(Deadline::max()); }

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
    while (state->pending > 0) co_await state->done.wait();
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

using Task = std::function<asio::awaitable<void>()>;

inline asio::awaitable<void> run_concurrently(std::vector<Task> tasks) {
  TaskGroup group(co_await asio::this_coro::executor);
  for (auto& task : tasks)
    group.spawn([](Task t) -> asio::awaitable<void> { co_await t(); }(std::move(task)));
  co_await group.wait();
}

inline asio::awaitable<void> sleep_until(Deadline deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
  std::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

template <class Duration>
asio::awaitable<void> sleep_for(Duration duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  std::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

// Unlike awaitable_operators' ||, an exception from `op` is rethrown at once
// instead of waiting for the timer; when the timer wins, `op` is cancelled
// through its cancellation slot and awaited.
template <typename T>
asio::awaitable<std::optional<T>> race_deadline(asio::awaitable<T> op,
                                                SteadyClock::duration timeout) {
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor, timeout);
  auto [order, op_error, op_result, timer_error] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, std::move(op), asio::experimental::deferred),
          timer.async_wait(asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)timer_error;
  if (order[0] == 1) co_return std::nullopt;
  if (op_error) std::rethrow_exception(op_error);
  co_return std::optional<T>(std::move(op_result));
}

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

}  // namespace apiary::async
