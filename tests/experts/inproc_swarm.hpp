#pragma once
// A network thread running an InprocNetwork, plus helpers to create RPC nodes
// and expert servers on it, and to run code on that thread (tests only).
#include "core/identity.hpp"
#include "net/inproc_transport.hpp"
#include "net/rpc.hpp"
#include "experts/expert_server.hpp"
#include "experts/ffn_expert.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <future>
#include <thread>

namespace apiary::experts::testing {

// Wraps a module; forward/backward block while the gate is closed (a server
// "stuck" mid-forward), and report that they were entered.
class GatedModule : public ExpertModule {
 public:
  GatedModule(std::unique_ptr<ExpertModule> inner, std::shared_future<void> gate,
              std::shared_ptr<std::atomic<int>> entered)
      : inner_(std::move(inner)), gate_(std::move(gate)), entered_(std::move(entered)) {}
  ExpertSchema schema() const override { return inner_->schema(); }
  std::span<float> parameters() override { return inner_->parameters(); }
  std::span<const float> parameters() const override { return std::as_const(*inner_).parameters(); }
  std::span<const float> gradients() const override { return inner_->gradients(); }
  HostTensor forward(const HostTensor& input) override {
    entered_->fetch_add(1);
    gate_.wait();
    return inner_->forward(input);
  }
  HostTensor backward(const HostTensor& input, const HostTensor& grad_output) override {
    gate_.wait();
    return inner_->backward(input, grad_output);
  }

 private:
  std::unique_ptr<ExpertModule> inner_;
  std::shared_future<void> gate_;
  std::shared_ptr<std::atomic<int>> entered_;
};

class InprocSwarm {
 public:
  InprocSwarm() {
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~InprocSwarm() { shutdown(); }

  template <typename F>
  auto on_net(F&& fn) {
    std::packaged_task<decltype(fn())()> task(std::forward<F>(fn));
    auto future = task.get_future();
    asio::post(ctx_, [&task] { task(); });
    return future.get();
  }

  rpc::RpcNode& add_node() {
    return *on_net([this] {
      auto transport = network_->create_transport(Identity::generate());
      nodes_.push_back(std::make_unique<rpc::RpcNode>(transport));
      nodes_.back()->start();
      return nodes_.back().get();
    });
  }

  ExpertServer& add_server(ExpertServerOptions options = {}) {
    auto& node = add_node();
    servers_.push_back(std::make_unique<ExpertServer>(node, options));
    return *servers_.back();
  }

  void kill(const rpc::RpcNode& node) {
    on_net([&] { network_->kill(node.peer_id()); });
  }

  void shutdown() {
    if (!thread_.joinable()) return;
    for (auto& server : servers_) server->stop();
    on_net([this] {
      for (auto& node : nodes_) node->stop();
    });
    guard_.reset();
    ctx_.stop();
    thread_.join();
    servers_.clear();
    nodes_.clear();
  }

 private:
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{ctx_.get_executor()};
  std::shared_ptr<InprocNetwork> network_ = InprocNetwork::create(ctx_.get_executor());
  std::vector<std::unique_ptr<rpc::RpcNode>> nodes_;
  std::vector<std::unique_ptr<ExpertServer>> servers_;
  std::thread thread_;
};

}  // namespace apiary::experts::testing
