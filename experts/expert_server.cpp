#include "experts/expert_server.hpp"

#include "core/codec.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "experts/checkpoint.hpp"
#include "experts/task_queue.hpp"
#include "experts/wire.hpp"

#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <thread>
#include <unordered_set>

namespace apiary::experts {

struct ExpertServer::State {
  explicit State(ExpertServerOptions opts)
      : options(std::move(opts)),
        trainers(options.trainers.begin(), options.trainers.end()),
        queue(options.max_batch_rows, options.max_queued_rows) {}

  ExpertServerOptions options;
  std::unordered_set<PeerId> trainers;  // empty: anyone admitted may train
  std::map<std::string, std::shared_ptr<ExpertBackend>> experts;  // fixed after start()
  TaskQueue queue;
  std::vector<std::thread> workers;
  std::atomic<bool> started{false}, stopped{false};

  std::atomic<std::uint64_t> forward_batches{0}, forward_rows{0}, backward_batches{0},
      backward_rows{0}, refused{0}, checkpoints{0};

  std::mutex checkpoint_mutex;
  std::condition_variable checkpoint_cv;
  std::thread checkpoint_thread;

  void run_worker();
  void process(TaskBatch& batch);
  void save_all();
};

namespace {
std::size_t tensor_count(TaskKind kind) {
  return kind == TaskKind::forward ? 1 : 2;
}
}  // namespace

void ExpertServer::State::run_worker() {
  while (auto batch = queue.next()) process(*batch);
}

void ExpertServer::State::process(TaskBatch& batch) {
  std::vector<TaskPtr> live;
  std::vector<HostTensor> inputs, grads;
  std::vector<wire::TensorCodec> reply_codecs;
  for (auto& task : batch.tasks) {
    if (task->abandoned.load()) continue;
    try {
      auto doc = codec::parse(task->request);
      auto request = wire::parse_request(doc, tensor_count(batch.kind));
      auto input = wire::decode_tensor(request.tensors[0], "input");
      if (batch.kind == TaskKind::backward) {
        grads.push_back(wire::decode_tensor(request.tensors[1], "grad_output"));
      }
      inputs.push_back(std::move(input));
      reply_codecs.push_back(request.reply_codec);
      live.push_back(task);
    } catch (...) {
      task->error = std::current_exception();
      Task::complete(task);
    }
    task->request = {};
  }
  if (live.empty()) return;
  try {
    std::vector<const HostTensor*> parts;
    for (auto& t : inputs) parts.push_back(&t);
    auto x = concat_rows(parts);
    HostTensor y;
    if (batch.kind == TaskKind::forward) {
      y = batch.backend->forward(x);
      forward_batches.fetch_add(1);
      forward_rows.fetch_add(x.rows());
    } else {
      std::vector<const HostTensor*> grad_parts;
      for (auto& t : grads) grad_parts.push_back(&t);
      y = batch.backend->backward(x, concat_rows(grad_parts));
      backward_batches.fetch_add(1);
      backward_rows.fetch_add(x.rows());
    }
    std::size_t row = 0;
    for (std::size_t i = 0; i < live.size(); ++i) {
      const auto rows = inputs[i].rows();
      live[i]->response = wire::encode_tensor(slice_rows(y, row, rows), reply_codecs[i]);
      row += rows;
      Task::complete(live[i]);
    }
  } catch (...) {
    auto error = std::current_exception();
    for (auto& task : live) {
      task->error = error;
      Task::complete(task);
    }
  }
}

void ExpertServer::State::save_all() {
  if (!options.checkpoint_dir) return;
  for (auto& [uid, backend] : experts) {
    try {
      save_checkpoint(*options.checkpoint_dir, *backend);
      checkpoints.fetch_add(1);
    } catch (const std::exception& e) {
      log::error("expert server: checkpoint of {} failed: {}", uid, e.what());
    }
  }
}

// Backward trains the expert: only a permitted caller may send one.
void check_may_train(ExpertServer::State& state, const PeerId& caller) {
  if (state.trainers.empty() || state.trainers.contains(caller)) return;
  state.refused.fetch_add(1);
  throw Error(Errc::permission_denied,
              "backward refused: peer " + caller.to_string() + " may not train this expert");
}

asio::awaitable<Bytes> serve_compute(std::shared_ptr<ExpertServer::State> state, TaskKind kind,
                                     const PeerId caller, Bytes request) {
  if (state->stopped.load()) throw Error(Errc::unavailable, "expert server is stopping");
  if (kind == TaskKind::backward) check_may_train(*state, caller);
  auto executor = co_await asio::this_coro::executor;
  std::shared_ptr<Task> task;
  try {
    auto doc = codec::parse(request);
    auto parsed = wire::parse_request(doc, tensor_count(kind));
    auto it = state->experts.find(parsed.uid);
    if (it == state->experts.end()) {
      throw Error(Errc::not_found, "expert " + parsed.uid + " is not served here");
    }
    if (kind == TaskKind::forward) {
      it->second->check_forward(parsed.tensors[0].shape);
    } else {
      it->second->check_backward(parsed.tensors[0].shape, parsed.tensors[1].shape);
    }
    task = std::make_shared<Task>(
        executor, std::chrono::steady_clock::now() + state->options.request_timeout);
    task->backend = it->second;
    task->kind = kind;
    task->rows = parsed.tensors[0].shape[0];
  } catch (const Error&) {
    state->refused.fetch_add(1);
    throw;
  }
  task->request = std::move(request);
  state->queue.submit(task);
  asio::error_code ec;
  co_await task->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!task->completed) {
    task->abandoned = true;
    throw Error(Errc::deadline_exceeded, "expert server: request not computed in time");
  }
  if (task->error) std::rethrow_exception(task->error);
  co_return std::move(task->response);
}

ExpertServer::ExpertServer(rpc::RpcNode& node, ExpertServerOptions options)
    : node_(node), state_(std::make_shared<State>(std::move(options))) {}

ExpertServer::~ExpertServer() {
  stop();
}

void ExpertServer::add_expert(std::shared_ptr<ExpertBackend> backend) {
  if (state_->started) throw Error(Errc::failed_precondition, "add_expert after start()");
  if (!backend) throw Error(Errc::invalid_argument, "add_expert: no backend");
  if (state_->options.checkpoint_dir &&
      load_checkpoint(*state_->options.checkpoint_dir, *backend)) {
    log::info("expert {} resumed from its checkpoint (update {})", backend->uid(),
              backend->update_count());
  }
  auto uid = backend->uid();
  if (!state_->experts.emplace(uid, std::move(backend)).second) {
    throw Error(Errc::invalid_argument, "expert " + uid + " added twice");
  }
}

void ExpertServer::start() {
  if (state_->started.exchange(true)) return;
  auto state = state_;
  node_.add_method(std::string(wire::kForwardMethod), [state](const rpc::RequestContext& context,
                                                              Bytes request) {
    return serve_compute(state, TaskKind::forward, context.peer, std::move(request));
  });
  node_.add_method(std::string(wire::kBackwardMethod), [state](const rpc::RequestContext& context,
                                                               Bytes request) {
    return serve_compute(state, TaskKind::backward, context.peer, std::move(request));
  });
  node_.add_method(std::string(wire::kInfoMethod),
                   [state](const rpc::RequestContext&, Bytes request) -> asio::awaitable<Bytes> {
                     auto uid = wire::parse_info_request(request);
                     auto it = state->experts.find(uid);
                     if (it == state->experts.end()) {
                       throw Error(Errc::not_found, "expert " + uid + " is not served here");
                     }
                     co_return wire::encode_info_reply(
                         {it->second->schema(), it->second->options().max_batch_size});
                   });
  for (std::size_t i = 0; i < std::max<std::size_t>(state_->options.num_workers, 1); ++i) {
    state_->workers.emplace_back([state] { state->run_worker(); });
  }
  if (state_->options.checkpoint_dir) {
    state_->checkpoint_thread = std::thread([state] {
      std::unique_lock lock(state->checkpoint_mutex);
      while (!state->stopped.load()) {
        state->checkpoint_cv.wait_for(lock, state->options.checkpoint_interval,
                                      [&] { return state->stopped.load(); });
        if (state->stopped.load()) break;
        lock.unlock();
        state->save_all();
        lock.lock();
      }
    });
  }
}

void ExpertServer::stop() {
  if (!state_->started.load() || state_->stopped.exchange(true)) return;
  for (auto& task : state_->queue.stop()) {
    task->error = std::make_exception_ptr(Error(Errc::unavailable, "expert server stopped"));
    Task::complete(task);
  }
  for (auto& worker : state_->workers) worker.join();
  state_->workers.clear();
  { std::lock_guard lock(state_->checkpoint_mutex); }
  state_->checkpoint_cv.notify_all();
  if (state_->checkpoint_thread.joinable()) state_->checkpoint_thread.join();
  state_->save_all();
}

void ExpertServer::save_checkpoints() {
  state_->save_all();
}

std::vector<std::string> ExpertServer::uids() const {
  std::vector<std::string> out;
  for (auto& [uid, backend] : state_->experts) out.push_back(uid);
  return out;
}

std::shared_ptr<ExpertBackend> ExpertServer::expert(const std::string& uid) const {
  auto it = state_->experts.find(uid);
  return it == state_->experts.end() ? nullptr : it->second;
}

ExpertServerStats ExpertServer::stats() const {
  ExpertServerStats s;
  s.forward_batches = state_->forward_batches.load();
  s.forward_rows = state_->forward_rows.load();
  s.backward_batches = state_->backward_batches.load();
  s.backward_rows = state_->backward_rows.load();
  s.refused = state_->refused.load();
  s.checkpoints = state_->checkpoints.load();
  s.queued_rows = state_->queue.queued_rows();
  return s;
}

}  // namespace apiary::experts
