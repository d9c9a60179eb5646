// ExpertServer and RemoteExpert over the in-process transport: results match
// local compute, bad requests fail alone, batching, deadlines, and a mixture
// of experts that survives a server killed mid-forward.
#include "core/error.hpp"
#include "experts/mixture.hpp"
#include "experts/remote_expert.hpp"
#include "experts/task_queue.hpp"
#include "fake_directory.hpp"
#include "inproc_swarm.hpp"

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/use_future.hpp>

#include <filesystem>
#include <random>

using namespace apiary;
using namespace apiary::experts;
using namespace std::chrono_literals;
using apiary::experts::testing::FakeDirectory;
using apiary::experts::testing::GatedModule;
using apiary::experts::testing::InprocSwarm;

namespace {

constexpr std::size_t kDim = 8;

std::unique_ptr<FfnExpert> ffn(std::uint64_t seed) {
  return std::make_unique<FfnExpert>(FfnConfig{kDim, 16, kDim, seed});
}

std::shared_ptr<ExpertBackend> backend(const std::string& uid, std::uint64_t seed) {
  BackendOptions options;
  options.max_batch_size = 64;
  options.optimizer.kind = ExpertOptimizerConfig::Kind::sgd;
  options.optimizer.sgd.lr = 0.01f;
  return std::make_shared<ExpertBackend>(uid, ffn(seed), options);
}

Errc error_code(PendingTensor pending, std::string* message = nullptr) {
  try {
    pending.get();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return Errc::ok;
}

// Releases a gate at scope exit so no worker stays blocked if a check fails.
struct GateGuard {
  std::promise<void> promise;
  std::shared_future<void> gate = promise.get_future().share();
  bool opened = false;
  void open() {
    if (!opened) promise.set_value();
    opened = true;
  }
  ~GateGuard() { open(); }
};

}  // namespace

TEST(ExpertServer, RemoteResultsMatchLocalComputeAndBackwardTrains) {
  InprocSwarm swarm;
  auto& server = swarm.add_server();
  server.add_expert(backend("ffn.0.0", 7));
  server.start();
  auto& client = swarm.add_node();
  RemoteExpert remote(client, {"ffn.0.0", server.node().local_address()});

  auto info = remote.fetch_info();
  EXPECT_EQ(info.schema.input.sample_shape, std::vector<std::size_t>{kDim});
  EXPECT_EQ(info.max_batch_size, 64u);

  auto x = HostTensor::normal({5, kDim}, 1);
  auto local = ffn(7)->forward(x);
  auto y = remote.forward(x, nullptr, 5s).get();
  ASSERT_EQ(y.shape, local.shape);
  for (std::size_t i = 0; i < y.values.size(); ++i) {
    EXPECT_NEAR(y.values[i], local.values[i], 1e-2 + 2e-3 * std::abs(local.values[i]));
  }
  // Uncompressed on the wire: exact.
  RemoteExpert exact(client, remote.info(), {wire::TensorCodec::fp32});
  auto y32 = exact.forward(x, nullptr, 5s).get();
  for (std::size_t i = 0; i < y32.values.size(); ++i) {
    EXPECT_NEAR(y32.values[i], local.values[i], 1e-6);
  }
  auto dx = remote.backward(x, HostTensor::normal({5, kDim}, 2), nullptr, 5s).get();
  EXPECT_EQ(dx.shape, x.shape);
  EXPECT_EQ(server.expert("ffn.0.0")->update_count(), 1u);
  EXPECT_EQ(server.stats().backward_rows, 5u);
}

TEST(ExpertServer, BadRequestsFailAloneAndTheServerKeepsServing) {
  InprocSwarm swarm;
  auto& server = swarm.add_server();
  server.add_expert(backend("ffn.0.0", 7));
  server.start();
  auto& bad_client = swarm.add_node();
  auto& good_client = swarm.add_node();
  auto address = server.node().local_address();
  RemoteExpert bad(bad_client, {"ffn.0.0", address});
  RemoteExpert good(good_client, {"ffn.0.0", address});

  auto signal = std::make_shared<CompletionSignal>();
  auto wrong_width = bad.forward(HostTensor::normal({2, kDim - 1}, 3), signal, 5s);
  auto good_call = good.forward(HostTensor::normal({3, kDim}, 4), signal, 5s);
  std::string message;
  EXPECT_EQ(error_code(std::move(wrong_width), &message), Errc::invalid_argument);
  EXPECT_NE(message.find("[*, 8]"), std::string::npos) << message;
  EXPECT_NE(message.find("[2, 7]"), std::string::npos) << message;
  EXPECT_EQ(good_call.get().rows(), 3u);

  // Too many rows, a mismatched gradient, an unknown expert, garbage bytes.
  EXPECT_EQ(error_code(bad.forward(HostTensor::normal({65, kDim}, 5), nullptr, 5s)),
            Errc::invalid_argument);
  EXPECT_EQ(error_code(bad.backward(HostTensor::normal({2, kDim}, 5),
                                    HostTensor::normal({3, kDim}, 6), nullptr, 5s)),
            Errc::invalid_argument);
  RemoteExpert missing(bad_client, {"ffn.9.9", address});
  EXPECT_EQ(error_code(missing.forward(HostTensor::normal({1, kDim}, 5), nullptr, 5s)),
            Errc::not_found);
  auto garbage = swarm.on_net([&] {
    return std::make_shared<std::future<Bytes>>(asio::co_spawn(
        bad_client.get_executor(),
        bad_client.call(address, wire::kForwardMethod, Bytes{0x93, 0xc1, 0x00}), asio::use_future));
  });
  try {
    garbage->get();
    FAIL() << "garbage accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::bad_message);
  }
  // A NaN is refused (by the worker), not computed.
  auto nan_input = HostTensor::normal({1, kDim}, 8);
  nan_input.values[3] = std::numeric_limits<float>::quiet_NaN();
  RemoteExpert exact(bad_client, {"ffn.0.0", address}, {wire::TensorCodec::fp32});
  EXPECT_EQ(error_code(exact.forward(nan_input, nullptr, 5s)), Errc::invalid_argument);

  EXPECT_EQ(good.forward(HostTensor::normal({2, kDim}, 9), nullptr, 5s).get().rows(), 2u);
  EXPECT_EQ(bad.forward(HostTensor::normal({2, kDim}, 9), nullptr, 5s).get().rows(), 2u);
  EXPECT_EQ(server.stats().refused, 5u);
}

TEST(ExpertServer, ConcurrentRequestsShareBatches) {
  InprocSwarm swarm;
  ExpertServerOptions options;
  options.num_workers = 1;
  auto& server = swarm.add_server(options);
  GateGuard gate;
  auto entered = std::make_shared<std::atomic<int>>(0);
  server.add_expert(std::make_shared<ExpertBackend>(
      "ffn.0.0", std::make_unique<GatedModule>(ffn(1), gate.gate, entered)));
  server.start();
  auto& client = swarm.add_node();
  RemoteExpert remote(client, {"ffn.0.0", server.node().local_address()});
  auto signal = std::make_shared<CompletionSignal>();
  std::vector<PendingTensor> calls;
  calls.push_back(remote.forward(HostTensor::normal({2, kDim}, 0), signal, 10s));
  // The first batch is stuck in the worker; everything sent now queues up.
  while (entered->load() == 0) std::this_thread::yield();
  for (int i = 1; i < 16; ++i)
    calls.push_back(remote.forward(HostTensor::normal({2, kDim}, i), signal, 10s));
  // Open the gate once the 15 requests wait in the server's queue.
  const auto deadline = Clock::now() + 10s;
  while (server.stats().queued_rows < 30 && Clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(server.stats().queued_rows, 30u);
  gate.open();
  for (auto& call : calls) EXPECT_EQ(call.get().rows(), 2u);
  auto stats = server.stats();
  EXPECT_EQ(stats.forward_rows, 32u);
  EXPECT_EQ(stats.forward_batches, 2u);  // the stuck one, then all 15 together
}

TEST(ExpertServer, SlowExpertHitsTheCallerDeadline) {
  InprocSwarm swarm;
  auto& server = swarm.add_server();
  GateGuard gate;
  auto entered = std::make_shared<std::atomic<int>>(0);
  server.add_expert(std::make_shared<ExpertBackend>(
      "ffn.0.0", std::make_unique<GatedModule>(ffn(1), gate.gate, entered)));
  server.start();
  auto& client = swarm.add_node();
  RemoteExpert remote(client, {"ffn.0.0", server.node().local_address()});
  const auto start = Clock::now();
  EXPECT_EQ(error_code(remote.forward(HostTensor::normal({1, kDim}, 0), nullptr, 200ms)),
            Errc::deadline_exceeded);
  EXPECT_LT(Clock::now() - start, 5s);
  gate.open();
  EXPECT_EQ(remote.forward(HostTensor::normal({1, kDim}, 0), nullptr, 5s).get().rows(), 1u);
}

TEST(ExpertServer, MixtureSurvivesAServerKilledMidForward) {
  InprocSwarm swarm;
  auto& healthy = swarm.add_server();
  auto& doomed = swarm.add_server();
  GateGuard gate;
  auto entered = std::make_shared<std::atomic<int>>(0);
  FakeDirectory directory;
  for (std::uint32_t j = 0; j < 3; ++j) {
    auto live_uid = "ffn.0." + std::to_string(j);
    healthy.add_expert(backend(live_uid, 10 + j));
    directory.declare(live_uid, healthy.node().local_address());
    auto doomed_uid = "ffn.1." + std::to_string(j);
    doomed.add_expert(std::make_shared<ExpertBackend>(
        doomed_uid, std::make_unique<GatedModule>(ffn(20 + j), gate.gate, entered)));
    directory.declare(doomed_uid, doomed.node().local_address());
  }
  healthy.start();
  doomed.start();
  auto& client = swarm.add_node();

  MoeConfig config;
  config.in_features = kDim;
  config.out_features = kDim;
  config.grid = {2, 3};
  config.k_best = 6;
  config.k_min = 3;
  config.forward_timeout = 20s;
  config.timeout_after_k_min = 20s;  // only the kill may end the wait early
  MixtureOfExperts moe(config, directory, remote_resolver(client));
  auto x = HostTensor::normal({4, kDim}, 42);

  const auto start = Clock::now();
  auto forward = std::async(std::launch::async, [&] { return moe.forward(x); });
  while (entered->load() == 0 && Clock::now() - start < 10s) std::this_thread::yield();
  ASSERT_GT(entered->load(), 0) << "the doomed server never started computing";
  swarm.kill(doomed.node());
  ASSERT_EQ(forward.wait_for(10s), std::future_status::ready);
  auto result = forward.get();
  EXPECT_LT(Clock::now() - start, 15s);
  EXPECT_EQ(result.answered, (std::vector<std::size_t>(4, 3)));
  gate.open();

  // Backward reaches the surviving experts, which train on it.
  auto dx = moe.backward(result, HostTensor::normal({4, kDim}, 43));
  EXPECT_EQ(dx.shape, x.shape);
  for (std::uint32_t j = 0; j < 3; ++j) {
    EXPECT_EQ(healthy.expert("ffn.0." + std::to_string(j))->update_count(), 1u);
  }
  // The next forward masks the dead server at once (connection refused).
  auto again = moe.forward(x);
  EXPECT_EQ(again.answered, (std::vector<std::size_t>(4, 3)));
}

TEST(TaskQueue, DrainsTheOldestQueueUpToTheRowLimit) {
  asio::io_context ctx;
  auto a = backend("ffn.0.0", 1), b = backend("ffn.0.1", 2);
  TaskQueue queue(10, 100);
  auto make = [&](std::shared_ptr<ExpertBackend> be, TaskKind kind, std::size_t rows) {
    auto task = std::make_shared<Task>(ctx.get_executor(), Clock::now() + 1s);
    task->backend = std::move(be);
    task->kind = kind;
    task->rows = rows;
    queue.submit(task);
    return task;
  };
  make(a, TaskKind::forward, 4);
  make(b, TaskKind::forward, 3);
  make(a, TaskKind::forward, 4);
  make(a, TaskKind::backward, 2);
  make(a, TaskKind::forward, 4);  // would exceed 10 rows with the first two
  auto first = queue.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->backend, a);
  EXPECT_EQ(first->kind, TaskKind::forward);
  EXPECT_EQ(first->tasks.size(), 2u);
  EXPECT_EQ(first->rows, 8u);
  auto second = queue.next();
  EXPECT_EQ(second->backend, b);
  auto third = queue.next();
  EXPECT_EQ(third->kind, TaskKind::backward);
  auto fourth = queue.next();
  EXPECT_EQ(fourth->rows, 4u);
  EXPECT_EQ(queue.queued_rows(), 0u);
  // A single task larger than the batch limit still runs (alone).
  make(a, TaskKind::forward, 30);
  EXPECT_EQ(queue.next()->rows, 30u);
  // Queue limit per expert.
  make(a, TaskKind::forward, 90);
  EXPECT_THROW(make(a, TaskKind::forward, 20), Error);
  EXPECT_EQ(queue.stop().size(), 1u);
  EXPECT_FALSE(queue.next());
  EXPECT_THROW(make(a, TaskKind::forward, 1), Error);
}

TEST(ExpertServer, CheckpointsOnStopAndResumesOnStart) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "apiary-expert-server-ckpt";
  std::filesystem::remove_all(dir);
  ExpertServerOptions options;
  options.checkpoint_dir = dir;
  std::vector<float> trained;
  {
    InprocSwarm swarm;
    auto& server = swarm.add_server(options);
    server.add_expert(backend("ffn.0.0", 7));
    server.start();
    auto& client = swarm.add_node();
    RemoteExpert remote(client, {"ffn.0.0", server.node().local_address()});
    remote.backward(HostTensor::normal({3, kDim}, 1), HostTensor::normal({3, kDim}, 2), nullptr, 5s)
        .get();
    server.stop();
    EXPECT_EQ(server.stats().checkpoints, 1u);
    trained = server.expert("ffn.0.0")->state().parameters;
  }
  InprocSwarm swarm;
  auto& server = swarm.add_server(options);
  server.add_expert(backend("ffn.0.0", 99));  // fresh weights, replaced by the checkpoint
  EXPECT_EQ(server.expert("ffn.0.0")->update_count(), 1u);
  EXPECT_EQ(server.expert("ffn.0.0")->state().parameters, trained);
  std::filesystem::remove_all(dir);
}

TEST(ExpertServer, BackwardOnlyFromPermittedTrainersForwardStaysOpen) {
  InprocSwarm swarm;
  auto& trainer = swarm.add_node();
  auto& stranger = swarm.add_node();
  ExpertServerOptions options;
  options.trainers = {trainer.peer_id()};
  auto& server = swarm.add_server(options);
  server.add_expert(backend("ffn.0.0", 7));
  server.start();
  const auto address = server.node().local_address();
  auto expert = server.expert("ffn.0.0");
  const auto params = [&] { return expert->state().parameters; };
  const auto before = params();

  RemoteExpert refused(stranger, {"ffn.0.0", address});
  const auto x = HostTensor::normal({4, kDim}, 1);
  const auto g = HostTensor::normal({4, kDim}, 2);
  std::string message;
  EXPECT_EQ(error_code(refused.backward(x, g, nullptr, 5s), &message), Errc::permission_denied);
  EXPECT_NE(message.find("backward refused: peer " + stranger.peer_id().to_string()),
            std::string::npos)
      << message;
  EXPECT_EQ(expert->update_count(), 0u);
  EXPECT_EQ(params(), before) << "a refused backward must not change the expert";
  EXPECT_EQ(server.stats().backward_rows, 0u);
  EXPECT_EQ(server.stats().refused, 1u);
  // Forward stays open to anyone.
  EXPECT_EQ(refused.forward(x, nullptr, 5s).get().rows(), 4u);

  RemoteExpert allowed(trainer, {"ffn.0.0", address});
  EXPECT_EQ(allowed.backward(x, g, nullptr, 5s).get().rows(), 4u);
  EXPECT_EQ(expert->update_count(), 1u);
  EXPECT_NE(params(), before) << "the permitted trainer's backward trains the expert";
}
