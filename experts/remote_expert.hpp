#pragma once
// RemoteExpert: an ExpertHandle that calls an expert on an ExpertServer through
// an RpcNode. Requests are encoded on the caller's thread (fp16 by default, to
// halve the bytes on the wire), sent from the node's network thread with the
// call's deadline, and decoded back on the caller's thread by PendingTensor.
//
// Threading: call from any thread except the node's network thread (the
// blocking info() would deadlock there). The RpcNode must outlive every call;
// RpcNode::stop() fails the calls still pending.
// Errors: the PendingTensor throws apiary::Error (deadline_exceeded,
// unavailable, connection_closed, invalid_argument from the server, …).
#include "net/rpc.hpp"
#include "experts/directory.hpp"
#include "experts/expert_handle.hpp"
#include "experts/wire.hpp"

namespace apiary::experts {

struct RemoteExpertOptions {
  wire::TensorCodec codec = wire::TensorCodec::fp16;
};

class RemoteExpert final : public ExpertHandle {
 public:
  RemoteExpert(rpc::RpcNode& node, ExpertInfo info, RemoteExpertOptions options = {});

  const std::string& uid() const noexcept override { return info_.uid; }
  const ExpertInfo& info() const noexcept { return info_; }

  PendingTensor forward(HostTensor input, std::shared_ptr<CompletionSignal> signal,
                        Clock::duration timeout) override;
  PendingTensor backward(HostTensor input, HostTensor grad_output,
                         std::shared_ptr<CompletionSignal> signal,
                         Clock::duration timeout) override;
  // The expert's schema and batch limit (blocking).
  wire::ExpertInfoReply fetch_info(Clock::duration timeout = std::chrono::seconds(5));

 private:
  PendingTensor call(std::string_view method, Bytes request,
                     std::shared_ptr<CompletionSignal> signal, Clock::duration timeout);

  rpc::RpcNode& node_;
  ExpertInfo info_;
  RemoteExpertOptions options_;
};

// An ExpertResolver for MixtureOfExperts that makes RemoteExperts on `node`.
inline auto remote_resolver(rpc::RpcNode& node, RemoteExpertOptions options = {}) {
  return [&node, options](const ExpertInfo& info) -> ExpertHandlePtr {
    return std::make_shared<RemoteExpert>(node, info, options);
  };
}

}  // namespace apiary::experts
