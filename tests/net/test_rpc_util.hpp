#pragma once
// Helpers for RPC/transport tests: run a coroutine to completion on an
// io_context with a hard time limit, and sleep inside coroutines.
#include "core/bytes.hpp"
#include "core/error.hpp"

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <chrono>
#include <future>
#include <stdexcept>
#include <string>

namespace apiary::test {

// Runs `task` on `ctx` (other work on ctx keeps running meanwhile) until it
// finishes; throws std::runtime_error if it takes longer than `limit`.
template <typename T>
T run(asio::io_context& ctx, asio::awaitable<T> task,
      std::chrono::milliseconds limit = std::chrono::seconds{60}) {
  auto future = asio::co_spawn(ctx, std::move(task), asio::use_future);
  const auto end = std::chrono::steady_clock::now() + limit;
  ctx.restart();
  while (future.wait_for(std::chrono::seconds{0}) != std::future_status::ready) {
    if (std::chrono::steady_clock::now() > end) throw std::runtime_error("test task timed out");
    ctx.run_one_for(std::chrono::milliseconds{50});
    if (ctx.stopped()) ctx.restart();
  }
  return future.get();
}

inline asio::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
}

inline Bytes bytes_of(std::string_view text) {
  auto span = as_bytes(text);
  return Bytes(span.begin(), span.end());
}

inline std::string string_of(const Bytes& bytes) {
  return std::string(as_string_view(bytes));
}

}  // namespace apiary::test
