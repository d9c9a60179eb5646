#include "experts/expert_handle.hpp"

#include "core/error.hpp"

namespace apiary::experts {

void CompletionSignal::notify() {
  {
    std::lock_guard lock(mutex_);
    ++count_;
  }
  cv_.notify_all();
}

std::uint64_t CompletionSignal::count() const {
  std::lock_guard lock(mutex_);
  return count_;
}

std::uint64_t CompletionSignal::wait_beyond(std::uint64_t seen, Clock::time_point deadline) const {
  std::unique_lock lock(mutex_);
  cv_.wait_until(lock, deadline, [&] { return count_ > seen; });
  return count_;
}

PendingTensor PendingTensor::ready(HostTensor value) {
  PendingTensor p;
  p.value_ = std::move(value);
  return p;
}

PendingTensor PendingTensor::failed(std::exception_ptr error) {
  PendingTensor p;
  p.error_ = std::move(error);
  return p;
}

PendingTensor::PendingTensor(std::future<Bytes> wire, Decoder decode)
    : wire_(std::move(wire)), decode_(std::move(decode)) {}

bool PendingTensor::wait_until(Clock::time_point deadline) {
  if (value_ || error_) return true;
  if (!wire_.valid()) return false;
  if (deadline == Clock::time_point::min()) {
    return wire_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }
  return wire_.wait_until(deadline) == std::future_status::ready;
}

HostTensor PendingTensor::get() {
  if (error_) std::rethrow_exception(error_);
  if (value_) return std::move(*value_);
  if (!wire_.valid()) throw Error(Errc::failed_precondition, "pending tensor: no call");
  auto bytes = wire_.get();  // rethrows the call's error
  return decode_(std::move(bytes));
}

namespace {
template <typename Fn>
PendingTensor run_now(Fn&& fn, const std::shared_ptr<CompletionSignal>& signal) {
  PendingTensor result;
  try {
    result = PendingTensor::ready(fn());
  } catch (...) {
    result = PendingTensor::failed(std::current_exception());
  }
  if (signal) signal->notify();
  return result;
}
}  // namespace

PendingTensor LocalExpert::forward(HostTensor input, std::shared_ptr<CompletionSignal> signal,
                                   Clock::duration) {
  return run_now([&] { return backend_->forward(input); }, signal);
}

PendingTensor LocalExpert::backward(HostTensor input, HostTensor grad_output,
                                    std::shared_ptr<CompletionSignal> signal, Clock::duration) {
  return run_now([&] { return backend_->backward(input, grad_output); }, signal);
}

}  // namespace apiary::experts
