#pragma once
// Runs a coroutine test body on an io_context with a wall-clock limit.
#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <functional>

// ASSERT_* cannot be used in coroutines (they `return`); this one co_returns.
#define CO_ASSERT_TRUE(condition)                     \
  if (!(condition)) {                                 \
    ADD_FAILURE() << "assertion failed: " #condition; \
    co_return;                                        \
  }

namespace apiary::dht::testing {

// Runs `body` to completion (or until `limit` passes, which fails the test).
inline void run_body(asio::io_context& io, std::function<asio::awaitable<void>()> body,
                     std::chrono::seconds limit = std::chrono::seconds(120)) {
  bool finished = false;
  std::exception_ptr error;
  asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    error = e;
    finished = true;
    io.stop();
  });
  io.run_for(limit);
  io.restart();
  ASSERT_TRUE(finished) << "test body did not finish within " << limit.count() << " s";
  if (error) std::rethrow_exception(error);
}

}  // namespace apiary::dht::testing
