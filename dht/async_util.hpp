#pragma once
// Small coroutine helpers for the DHT's network thread.
// Errors: tasks' exceptions are swallowed by run_concurrently (tasks report
// their own outcome); nothing else throws.
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace apiary::dht {

using Task = std::function<asio::awaitable<void>()>;

// Starts every task on the current executor and returns once all completed.
inline asio::awaitable<void> run_concurrently(std::vector<Task> tasks) {
  auto executor = co_await asio::this_coro::executor;
  struct Join {
    explicit Join(asio::any_io_executor ex) : done(ex) {}
    std::size_t remaining = 0;
    asio::steady_timer done;
  };
  auto join = std::make_shared<Join>(executor);
  join->remaining = tasks.size();
  for (auto& task : tasks) {
    asio::co_spawn(
        executor,
        [join, task = std::move(task)]() -> asio::awaitable<void> {
          try {
            co_await task();
          } catch (const std::exception&) {
          }
          if (--join->remaining == 0) join->done.cancel();
        },
        asio::detached);
  }
  while (join->remaining > 0) {
    join->done.expires_at(asio::steady_timer::time_point::max());
    std::error_code ec;
    co_await join->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// Waits `duration` on the current executor.
template <class Duration>
asio::awaitable<void> sleep_for(Duration duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  std::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace apiary::dht
