// bench_moe — how fast are remote experts?
//   * server throughput (samples/s): clients on their own threads send batches
//     of `--batch` rows to a server hosting `--experts` FFN experts
//     (hidden → 4·hidden → hidden), forward only, then forward + backward
//     (each backward also runs the expert's Adam step), over encrypted TCP
//     loopback with fp16 tensors on the wire;
//   * client latency p50/p99 (ms) of a MixtureOfExperts forward pass of
//     `--client-batch` rows with 1, 4 and 16 experts per sample (the expert
//     list comes from an in-memory directory: DHT lookups are not included);
//   * remote_over_local: median time of one expert forward through the network
//     over the same forward in-process (batch `--local-batch`).
//
//   bench_moe [--hidden 1024] [--batch 2048] [--experts 16] [--clients 4]
//             [--batches N] [--iterations N] [--device cpu|cuda] [--quick] [--json]
// --device cuda computes the server's experts (and the in-process reference)
// on the GPU; it exits with code 2 and the driver's reason where there is none.
#include "core/identity.hpp"
#include "core/memory_tuning.hpp"
#include "net/rpc.hpp"
#include "net/tcp_transport.hpp"
#include "experts/expert_server.hpp"
#include "experts/expert_uid.hpp"
#include "experts/ffn_expert.hpp"
#include "experts/mixture.hpp"
#include "experts/remote_expert.hpp"
#include "kernels/device.hpp"

#include <CLI/CLI.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <random>
#include <thread>
#include <vector>

using namespace apiary;
using namespace apiary::experts;
using namespace std::chrono_literals;

namespace {

// One RpcNode on TCP loopback with its own network thread.
class NetNode {
 public:
  NetNode() {
    node_ = std::make_unique<rpc::RpcNode>(
        make_tcp_transport(ctx_.get_executor(), Identity::generate(), {"127.0.0.1", 0}));
  }
  void start() {
    node_->start();
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~NetNode() {
    if (thread_.joinable()) {
      std::promise<void> done;
      asio::post(ctx_, [&] {
        node_->stop();
        done.set_value();
      });
      done.get_future().wait();
      guard_.reset();
      ctx_.stop();
      thread_.join();
    }
  }
  rpc::RpcNode& node() { return *node_; }

 private:
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{ctx_.get_executor()};
  std::unique_ptr<rpc::RpcNode> node_;
  std::thread thread_;
};

class StaticDirectory : public ExpertDirectory {
 public:
  StaticDirectory(const std::vector<std::string>& uids, const PeerAddress& server) {
    for (const auto& text : uids) {
      auto uid = ExpertUid::parse(text);
      for (std::size_t level = 0; level < uid.coords.size(); ++level) {
        table_[uid.prefix(level)][uid.coords[level]] = ExpertInfo{text, server};
      }
    }
  }
  std::vector<PrefixChildren> get_children(std::span<const std::string> prefixes) override {
    std::vector<PrefixChildren> out;
    for (const auto& p : prefixes) {
      auto it = table_.find(p);
      out.push_back(it == table_.end() ? PrefixChildren{} : it->second);
    }
    return out;
  }

 private:
  std::map<std::string, PrefixChildren> table_;
};

double seconds_since(experts::Clock::time_point start) {
  return std::chrono::duration<double>(experts::Clock::now() - start).count();
}

double percentile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  if (values.empty()) return 0.0;
  auto index = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

// Samples per second with `clients` threads each sending `batches` requests.
double throughput(rpc::RpcNode& client, const std::vector<std::string>& uids,
                  const PeerAddress& server, std::size_t clients, std::size_t batches,
                  const HostTensor& input, bool backward) {
  std::atomic<std::size_t> samples{0};
  std::atomic<bool> failed{false};
  const auto start = experts::Clock::now();
  std::vector<std::thread> threads;
  for (std::size_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      for (std::size_t b = 0; b < batches; ++b) {
        const auto& uid = uids[(c * batches + b) % uids.size()];
        RemoteExpert expert(client, {uid, server});
        try {
          auto y = expert.forward(input, nullptr, 600s).get();
          if (backward) expert.backward(input, y, nullptr, 600s).get();
          samples += input.rows();
        } catch (const std::exception& e) {
          std::fprintf(stderr, "bench_moe: call to %s failed: %s\n", uid.c_str(), e.what());
          failed = true;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) throw std::runtime_error("some expert calls failed");
  return static_cast<double>(samples.load()) / seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  // As `apiary expert-server` does: its batches reuse large freed buffers.
  apiary::tune_allocator_for_large_buffers();
  CLI::App app{"bench_moe: expert server throughput, MoE client latency, remote vs local"};
  std::size_t hidden = 1024, batch = 2048, num_experts = 16, clients = 4, batches = 0,
              iterations = 20, client_batch = 32, local_batch = 256;
  bool quick = false, json = false;
  std::string device_name = "cpu";
  app.add_option("--hidden", hidden, "expert width")->capture_default_str();
  app.add_option("--device", device_name, "where the experts compute")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--batch", batch, "rows per throughput request")->capture_default_str();
  app.add_option("--experts", num_experts, "experts on the server (a 4×N/4 grid)")
      ->capture_default_str()
      ->check(CLI::Range(4, 1024));
  app.add_option("--clients", clients, "client threads for throughput")->capture_default_str();
  app.add_option("--batches", batches, "requests per client (default: experts / clients)");
  app.add_option("--iterations", iterations, "MoE forward passes per latency figure")
      ->capture_default_str();
  app.add_option("--client-batch", client_batch, "rows per MoE forward")->capture_default_str();
  app.add_option("--local-batch", local_batch, "rows for remote vs local")->capture_default_str();
  app.add_flag("--quick", quick, "small sizes (smoke test)");
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    hidden = 128;
    batch = 256;
    iterations = 5;
  }
  if (num_experts % 4 != 0) {
    std::fprintf(stderr, "--experts must be a multiple of 4\n");
    return 2;
  }
  if (batches == 0) batches = std::max<std::size_t>(1, num_experts / clients);
  const auto device = device_name == "cuda" ? kernels::Device::cuda : kernels::Device::cpu;
  if (device == kernels::Device::cuda && !kernels::cuda_available()) {
    std::fprintf(stderr, "bench_moe: --device cuda: %s\n", kernels::cuda_status().c_str());
    return 2;
  }

  NetNode server_net, client_net;
  ExpertServerOptions server_options;
  server_options.num_workers = 1;  // OpenBLAS uses the cores inside one GEMM
  server_options.max_batch_rows = 4 * batch;
  ExpertServer server(server_net.node(), server_options);
  std::vector<std::string> uids;
  BackendOptions backend_options;
  backend_options.max_batch_size = 4 * batch;
  for (std::size_t i = 0; i < num_experts; ++i) {
    auto uid = "ffn." + std::to_string(i / (num_experts / 4)) + "." +
               std::to_string(i % (num_experts / 4));
    uids.push_back(uid);
    server.add_expert(std::make_shared<ExpertBackend>(
        uid, std::make_unique<FfnExpert>(FfnConfig::for_hidden(hidden, i), device),
        backend_options));
  }
  server.start();
  server_net.start();
  client_net.start();
  const auto address = server_net.node().local_address();

  // Warm-up (connections, allocations).
  auto input = HostTensor::normal({batch, hidden}, 1);
  RemoteExpert(client_net.node(), {uids[0], address})
      .forward(HostTensor::normal({8, hidden}, 0), nullptr, 60s)
      .get();

  const double fwd = throughput(client_net.node(), uids, address, clients, batches, input, false);
  const double fwdbwd = throughput(client_net.node(), uids, address, clients, batches, input, true);

  // MoE client latency with k experts per sample.
  StaticDirectory directory(uids, address);
  nlohmann::json latency = nlohmann::json::object();
  double p50_k4 = 0.0, p99_k4 = 0.0;
  for (std::size_t k : {1u, 4u, 16u}) {
    if (k > num_experts) continue;
    MoeConfig config;
    config.in_features = hidden;
    config.out_features = hidden;
    config.grid = {4, num_experts / 4};
    config.k_best = k;
    config.k_min = k;
    config.forward_timeout = 120s;
    MixtureOfExperts moe(config, directory, remote_resolver(client_net.node()));
    auto x = HostTensor::normal({client_batch, hidden}, 7 + k);
    moe.forward(x);  // warm-up
    std::vector<double> ms;
    for (std::size_t i = 0; i < iterations; ++i) {
      const auto start = experts::Clock::now();
      auto out = moe.forward(x);
      ms.push_back(seconds_since(start) * 1e3);
    }
    const double p50 = percentile(ms, 0.5), p99 = percentile(ms, 0.99);
    latency["k" + std::to_string(k)] = {{"p50_ms", p50}, {"p99_ms", p99}};
    if (k == 4) {
      p50_k4 = p50;
      p99_k4 = p99;
    }
  }

  // Remote vs in-process, same expert size and batch.
  ExpertBackend local("ffn.local.0",
                      std::make_unique<FfnExpert>(FfnConfig::for_hidden(hidden, 5), device));
  RemoteExpert remote(client_net.node(), {uids[0], address});
  auto x = HostTensor::normal({local_batch, hidden}, 3);
  std::vector<double> local_ms, remote_ms;
  for (std::size_t i = 0; i < iterations + 1; ++i) {
    auto start = experts::Clock::now();
    local.forward(x);
    if (i) local_ms.push_back(seconds_since(start) * 1e3);
    start = experts::Clock::now();
    remote.forward(x, nullptr, 60s).get();
    if (i) remote_ms.push_back(seconds_since(start) * 1e3);
  }
  const double local_p50 = percentile(local_ms, 0.5), remote_p50 = percentile(remote_ms, 0.5);
  const double ratio = remote_p50 / local_p50;
  server.stop();

  if (json) {
    nlohmann::json out{{"device", device_name},
                       {"hidden", hidden},
                       {"batch", batch},
                       {"experts", num_experts},
                       {"clients", clients},
                       {"requests", clients * batches},
                       {"server_fwd_samples_per_s", fwd},
                       {"server_fwdbwd_samples_per_s", fwdbwd},
                       {"client_batch", client_batch},
                       {"client_p50_ms", p50_k4},
                       {"client_p99_ms", p99_k4},
                       {"client_latency", latency},
                       {"local_batch", local_batch},
                       {"local_forward_ms", local_p50},
                       {"remote_forward_ms", remote_p50},
                       {"remote_over_local", ratio}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("bench_moe: %zu FFN experts (%zu → %zu → %zu) on %s, TCP loopback, fp16 wire\n",
                num_experts, hidden, 4 * hidden, hidden, device_name.c_str());
    std::printf("%-44s %12.0f samples/s\n", "server forward (batch rows)", fwd);
    std::printf("%-44s %12.0f samples/s\n", "server forward+backward+Adam", fwdbwd);
    for (auto& [name, v] : latency.items()) {
      std::printf("MoE forward, %zu rows, %-3s experts/sample    p50 %8.2f ms   p99 %8.2f ms\n",
                  client_batch, name.c_str() + 1, v["p50_ms"].get<double>(),
                  v["p99_ms"].get<double>());
    }
    std::printf("expert forward %zu rows: local %.2f ms, remote %.2f ms, ratio %.2f\n", local_batch,
                local_p50, remote_p50, ratio);
  }
  return 0;
}
