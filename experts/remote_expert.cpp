#include "experts/remote_expert.hpp"

#include "core/error.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <future>

namespace apiary::experts {

RemoteExpert::RemoteExpert(rpc::RpcNode& node, ExpertInfo info, RemoteExpertOptions options)
    : node_(node), info_(std::move(info)), options_(options) {}

PendingTensor RemoteExpert::call(std::string_view method, Bytes request,
                                 std::shared_ptr<CompletionSignal> signal,
                                 Clock::duration timeout) {
  auto promise = std::make_shared<std::promise<Bytes>>();
  auto future = promise->get_future();
  const auto timeout_ms = std::max<std::chrono::milliseconds>(
      std::chrono::duration_cast<std::chrono::milliseconds>(timeout), std::chrono::milliseconds(1));
  asio::co_spawn(
      node_.get_executor(),
      [node = &node_, to = info_.server, method = std::string(method), request = std::move(request),
       promise, signal, timeout_ms]() mutable -> asio::awaitable<void> {
        try {
          promise->set_value(
              co_await node->call(to, method, std::move(request), rpc::CallOptions{timeout_ms}));
        } catch (...) {
          promise->set_exception(std::current_exception());
        }
        if (signal) signal->notify();
      },
      asio::detached);
  return PendingTensor(std::move(future),
                       [](Bytes reply) { return wire::decode_tensor_message(reply); });
}

PendingTensor RemoteExpert::forward(HostTensor input, std::shared_ptr<CompletionSignal> signal,
                                    Clock::duration timeout) {
  try {
    auto request = wire::encode_forward(info_.uid, input, options_.codec);
    return call(wire::kForwardMethod, std::move(request), std::move(signal), timeout);
  } catch (...) {
    if (signal) signal->notify();
    return PendingTensor::failed(std::current_exception());
  }
}

PendingTensor RemoteExpert::backward(HostTensor input, HostTensor grad_output,
                                     std::shared_ptr<CompletionSignal> signal,
                                     Clock::duration timeout) {
  try {
    auto request = wire::encode_backward(info_.uid, input, grad_output, options_.codec);
    return call(wire::kBackwardMethod, std::move(request), std::move(signal), timeout);
  } catch (...) {
    if (signal) signal->notify();
    return PendingTensor::failed(std::current_exception());
  }
}

wire::ExpertInfoReply RemoteExpert::fetch_info(Clock::duration timeout) {
  auto promise = std::make_shared<std::promise<Bytes>>();
  auto future = promise->get_future();
  const auto timeout_ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  asio::co_spawn(
      node_.get_executor(),
      [node = &node_, to = info_.server, request = wire::encode_info_request(info_.uid), promise,
       timeout_ms]() mutable -> asio::awaitable<void> {
        try {
          promise->set_value(co_await node->call(to, wire::kInfoMethod, std::move(request),
                                                 rpc::CallOptions{timeout_ms}));
        } catch (...) {
          promise->set_exception(std::current_exception());
        }
      },
      asio::detached);
  // The RPC deadline bounds the call; the extra second covers scheduling.
  if (future.wait_for(timeout + std::chrono::seconds(1)) != std::future_status::ready) {
    throw Error(Errc::deadline_exceeded, "expert.info to " + info_.uid + " timed out");
  }
  return wire::parse_info_reply(future.get());
}

}  // namespace apiary::experts
