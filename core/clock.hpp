#pragma once
// The one clock of the library, injectable so tests can drive time.
//
// Two readings: the steady clock (deadlines, durations) and wall time in
// seconds since the Unix epoch (expirations other peers must understand, as
// in DHT records and matchmaking declarations). Components take a Clock in
// their options; the default reads the real clocks. ManualClock is a clock
// that moves only when told (unit tests of state machines: no sleeps).
//
// Deadline is the one deadline type of every API: a steady-clock time point,
// converted once from the configuration's seconds with deadline_after().
// No errors.
#include <chrono>
#include <functional>
#include <memory>

namespace apiary {

using SteadyClock = std::chrono::steady_clock;
using Deadline = SteadyClock::time_point;
// Wall time in seconds since the Unix epoch (double: what peers exchange).
using WallClock = std::function<double()>;

inline double wall_seconds() noexcept {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct Clock {
  std::function<Deadline()> steady = [] { return SteadyClock::now(); };
  WallClock wall = wall_seconds;

  Deadline now() const { return steady(); }
  double wall_now() const { return wall(); }
  // The steady time point at which the wall clock reads `wall_time` (now if past).
  Deadline steady_at(double wall_time) const {
    const double left = wall_time - wall_now();
    if (left <= 0) return now();
    return now() +
           std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(left));
  }
};

// A clock that moves only by advance(); its copies (clock()) follow it.
class ManualClock {
 public:
  explicit ManualClock(double wall_start = 1.0e9) : state_(std::make_shared<State>()) {
    state_->wall = wall_start;
  }
  void advance(SteadyClock::duration by) {
    state_->steady += by;
    state_->wall += std::chrono::duration<double>(by).count();
  }
  Deadline now() const { return state_->steady; }
  double wall_now() const { return state_->wall; }
  Clock clock() const {
    Clock c;
    c.steady = [state = state_] { return state->steady; };
    c.wall = [state = state_] { return state->wall; };
    return c;
  }

 private:
  struct State {
    Deadline steady{std::chrono::hours(1)};
    double wall = 0;
  };
  std::shared_ptr<State> state_;
};

// Seconds from `start` to now on the steady clock (logs, metrics, benchmarks).
inline double seconds_since(Deadline start) noexcept {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// `timeout` after `now`, saturating instead of overflowing (huge timeouts mean "never").
template <typename Rep, typename Period>
Deadline deadline_after(std::chrono::duration<Rep, Period> timeout, Deadline now) noexcept {
  const std::chrono::duration<double> wanted = timeout;
  const std::chrono::duration<double> room = Deadline::max() - now;
  if (wanted >= room) return Deadline::max();
  return now + std::chrono::duration_cast<SteadyClock::duration>(wanted);
}
template <typename Rep, typename Period>
Deadline deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  return deadline_after(timeout, SteadyClock::now());
}
// From a configuration's seconds.
inline Deadline deadline_after_seconds(double seconds) noexcept {
  return deadline_after(std::chrono::duration<double>(seconds));
}

}  // namespace apiary
