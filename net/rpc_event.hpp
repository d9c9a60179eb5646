#pragma once
// Event: a one-waiter wake-up signal for coroutines on one executor (internal to
// core/: RPC calls, streams, in-process and emulated connections).
//
// A coroutine co_awaits wait_until(deadline); another coroutine on the same
// executor calls notify(). Built on a steady_timer, so waiting honours asio
// per-operation cancellation (e.g. from awaitable_operators `||`). A notify()
// that comes before the wait is remembered, so no wake-up is lost.
// Errors: wait_until throws Error{cancelled} when the awaiting operation is
// cancelled. Not thread-safe (one executor, no locks).
#include "core/error.hpp"

#include <asio/awaitable.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>

namespace apiary::detail {

class Event {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Event(const asio::any_io_executor& executor) : timer_(executor) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Wakes the waiter (or the next wait, if none is waiting yet).
  void notify() noexcept {
    notified_ = true;
    timer_.cancel();
  }

  // True when notified, false when `deadline` passed first. Consumes the notification.
  asio::awaitable<bool> wait_until(Clock::time_point deadline) {
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

  asio::awaitable<void> wait() { co_await wait_until(Clock::time_point::max()); }

 private:
  asio::steady_timer timer_;
  bool notified_ = false;
};

// Deadline `timeout` from now, saturating instead of overflowing.
inline Event::Clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  const auto now = Event::Clock::now();
  if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(
                     Event::Clock::time_point::max() - now)) {
    return Event::Clock::time_point::max();
  }
  return now + timeout;
}

}  // namespace apiary::detail
