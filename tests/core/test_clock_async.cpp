// core/clock.hpp and core/async.hpp: the injectable clock and the coroutine toolkit.
#include "core/async.hpp"
#include "core/clock.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <chrono>
#include <string>

using namespace apiary;
using namespace std::chrono_literals;

namespace {

template <typename T>
T run(asio::io_context& ctx, asio::awaitable<T> task) {
  auto future = asio::co_spawn(ctx, std::move(task), asio::use_future);
  ctx.run();
  ctx.restart();
  return future.get();
}

}  // namespace

TEST(Clock, ManualClockMovesOnlyWhenTold) {
  ManualClock manual(5000.0);
  const Clock clock = manual.clock();
  const Deadline start = clock.now();
  EXPECT_DOUBLE_EQ(clock.wall_now(), 5000.0);
  EXPECT_EQ(clock.now(), start);
  manual.advance(1500ms);
  EXPECT_EQ(clock.now() - start, 1500ms);
  EXPECT_DOUBLE_EQ(clock.wall_now(), 5001.5);
  // The steady point at which the wall clock reads a given time.
  EXPECT_EQ(clock.steady_at(5003.5) - clock.now(), 2s);
  EXPECT_EQ(clock.steady_at(10.0), clock.now());  // the past: now
}

TEST(Clock, DeadlineAfterSaturates) {
  const Deadline now = SteadyClock::now();
  EXPECT_EQ(deadline_after(250ms, now), now + 250ms);
  EXPECT_EQ(deadline_after(std::chrono::hours::max(), now), Deadline::max());
  EXPECT_EQ(deadline_after(std::chrono::duration<double>(1e300), now), Deadline::max());
  EXPECT_GE(deadline_after_seconds(0.5), now + 500ms);
  EXPECT_GE(seconds_since(now), 0.0);
}

TEST(Async, EventRemembersAnEarlyNotify) {
  asio::io_context ctx;
  auto task = [&]() -> asio::awaitable<std::string> {
    async::Event event(co_await asio::this_coro::executor);
    event.notify();  // before anyone waits
    const bool first = co_await event.wait_until(SteadyClock::now() + 5s);
    const bool second = co_await event.wait_until(SteadyClock::now() + 20ms);  // consumed
    co_return std::to_string(first) + std::to_string(second);
  };
  EXPECT_EQ(run(ctx, task()), "10");
}

// (free functions, not lambdas: a coroutine lambda's captures die with the
// temporary closure, its parameters live in the frame)
asio::awaitable<void> wait_for_go(async::Signal& signal, const bool& go, int& woken) {
  while (!go) co_await signal.wait_until(SteadyClock::now() + 10s);
  ++woken;
}

asio::awaitable<void> say_go(async::Signal& signal, bool& go) {
  co_await async::sleep_for(5ms);
  go = true;
  signal.notify_all();
}

asio::awaitable<void> fail() {
  throw Error(Errc::internal, "task failed");
  co_return;
}

TEST(Async, SignalWakesEveryWaiterAndTaskGroupJoins) {
  asio::io_context ctx;
  auto task = [&]() -> asio::awaitable<int> {
    auto executor = co_await asio::this_coro::executor;
    async::Signal signal(executor);
    int woken = 0;
    bool go = false;
    async::TaskGroup group(executor);
    for (int i = 0; i < 3; ++i) group.spawn(wait_for_go(signal, go, woken));
    group.spawn(say_go(signal, go));
    group.spawn(fail());  // a failing task does not stop the group
    co_await group.wait();
    EXPECT_EQ(group.pending(), 0u);
    co_return woken;
  };
  EXPECT_EQ(run(ctx, task()), 3);
}

TEST(Async, RunConcurrentlyWaitsForAll) {
  asio::io_context ctx;
  auto task = [&]() -> asio::awaitable<int> {
    int done = 0;
    std::vector<async::Task> tasks;
    for (int i = 0; i < 4; ++i)
      tasks.push_back([&done, i]() -> asio::awaitable<void> {
        co_await async::sleep_for(std::chrono::milliseconds(i));
        ++done;
      });
    co_await async::run_concurrently(std::move(tasks));
    co_return done;
  };
  EXPECT_EQ(run(ctx, task()), 4);
}

TEST(Async, RaceDeadline) {
  asio::io_context ctx;
  auto slow = []() -> asio::awaitable<int> {
    co_await async::sleep_for(10s);
    co_return 1;
  };
  auto fast = []() -> asio::awaitable<int> { co_return 7; };
  auto task = [&]() -> asio::awaitable<std::string> {
    auto lost = co_await async::race_deadline(slow(), 20ms);
    auto won = co_await async::race_deadline(fast(), 5s);
    co_return std::to_string(lost.has_value()) + std::to_string(won.value_or(0));
  };
  const auto started = SteadyClock::now();
  EXPECT_EQ(run(ctx, task()), "07");
  EXPECT_LT(SteadyClock::now() - started, 5s);
}
