#pragma once
// How a mixture-of-experts layer calls one expert: in-process (LocalExpert) or
// over the network (experts/remote_expert.hpp). Calls return a PendingTensor at
// once; the caller waits on it with a deadline. A CompletionSignal shared by
// many calls wakes the waiter whenever any of them finishes, so a layer can
// stop waiting as soon as enough experts answered.
//
// Threading: PendingTensor::wait_until()/get() run on the caller's thread; the
// result is decoded there too (never on a network thread).
// Errors: get() throws the call's apiary::Error (deadline_exceeded, unavailable,
// invalid_argument from the expert, …).
#include "core/bytes.hpp"
#include "experts/expert_backend.hpp"
#include "experts/tensor.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace apiary::experts {

using Clock = std::chrono::steady_clock;

// Counts finished calls; waiters block until the count moves.
class CompletionSignal {
 public:
  void notify();
  std::uint64_t count() const;
  // Waits until count() > seen or the deadline; returns the count.
  std::uint64_t wait_beyond(std::uint64_t seen, Clock::time_point deadline) const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::uint64_t count_ = 0;
};

class PendingTensor {
 public:
  using Decoder = std::function<HostTensor(Bytes)>;

  PendingTensor() = default;
  static PendingTensor ready(HostTensor value);
  static PendingTensor failed(std::exception_ptr error);
  // A wire result decoded on the caller's thread by `decode`.
  PendingTensor(std::future<Bytes> wire, Decoder decode);

  bool valid() const noexcept { return value_.has_value() || error_ || wire_.valid(); }
  // True once finished (value or error).
  bool wait_until(Clock::time_point deadline);
  bool is_ready() { return wait_until(Clock::time_point::min()); }
  // The result; throws its error. Waits if not finished. Call once.
  HostTensor get();

 private:
  std::optional<HostTensor> value_;
  std::exception_ptr error_;
  std::future<Bytes> wire_;
  Decoder decode_;
};

class ExpertHandle {
 public:
  virtual ~ExpertHandle() = default;
  virtual const std::string& uid() const noexcept = 0;
  // `signal` (optional) is notified when the call finishes.
  virtual PendingTensor forward(HostTensor input, std::shared_ptr<CompletionSignal> signal,
                                Clock::duration timeout) = 0;
  virtual PendingTensor backward(HostTensor input, HostTensor grad_output,
                                 std::shared_ptr<CompletionSignal> signal,
                                 Clock::duration timeout) = 0;
};

using ExpertHandlePtr = std::shared_ptr<ExpertHandle>;

// Runs a backend synchronously on the calling thread (tests, single process).
class LocalExpert final : public ExpertHandle {
 public:
  explicit LocalExpert(std::shared_ptr<ExpertBackend> backend) : backend_(std::move(backend)) {}
  const std::string& uid() const noexcept override { return backend_->uid(); }
  PendingTensor forward(HostTensor input, std::shared_ptr<CompletionSignal> signal,
                        Clock::duration timeout) override;
  PendingTensor backward(HostTensor input, HostTensor grad_output,
                         std::shared_ptr<CompletionSignal> signal,
                         Clock::duration timeout) override;

 private:
  std::shared_ptr<ExpertBackend> backend_;
};

}  // namespace apiary::experts
