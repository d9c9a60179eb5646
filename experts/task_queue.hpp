#pragma once
// The boundary between an expert server's network thread and its compute
// workers. Requests become Tasks queued per (expert, forward|backward); a
// worker takes the queue whose oldest task waited longest and drains up to
// max_batch_rows rows of it into one batch (always at least one task), so many
// small requests from many clients share one GEMM.
//
// Threading: submit() from the network thread, next() from workers; a mutex
// and a condition variable guard the queues (compute-side code, not protocol
// code). Completion travels back through Task::complete(), which posts to the
// network thread. Errors: submit() throws Error{resource_exhausted} when an
// expert's queue is full and Error{unavailable} after stop().
#include "core/bytes.hpp"
#include "experts/expert_backend.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace apiary::experts {

enum class TaskKind : std::uint8_t { forward, backward };

// One request waiting for compute. The network-thread side waits on `timer`;
// complete() stores the outcome and wakes it from any thread.
struct Task {
  Task(asio::any_io_executor executor, std::chrono::steady_clock::time_point deadline)
      : timer(executor, deadline) {}

  std::shared_ptr<ExpertBackend> backend;
  TaskKind kind = TaskKind::forward;
  std::size_t rows = 0;
  Bytes request;  // the whole request message, decoded by the worker
  std::chrono::steady_clock::time_point enqueued{};

  // Outcome, written by a worker before complete() and read on the network
  // thread after `completed` is set there (the post orders them).
  Bytes response;
  std::exception_ptr error;
  bool completed = false;              // network thread only
  std::atomic<bool> abandoned{false};  // the waiter gave up (deadline): skip it
  asio::steady_timer timer;

  // Publishes the outcome to the network thread and wakes the waiter.
  static void complete(const std::shared_ptr<Task>& task);
};

using TaskPtr = std::shared_ptr<Task>;

struct TaskBatch {
  std::shared_ptr<ExpertBackend> backend;
  TaskKind kind = TaskKind::forward;
  std::vector<TaskPtr> tasks;
  std::size_t rows = 0;
};

class TaskQueue {
 public:
  TaskQueue(std::size_t max_batch_rows, std::size_t max_queued_rows_per_expert);

  void submit(TaskPtr task);
  // Blocks until a batch is ready or stop(); nullopt after stop().
  std::optional<TaskBatch> next();
  // Wakes every worker; returns the tasks still queued (the caller fails them).
  std::vector<TaskPtr> stop();
  std::size_t queued_rows() const;

 private:
  struct Queue {
    std::deque<TaskPtr> tasks;
    std::size_t rows = 0;
  };
  using Key = std::pair<const ExpertBackend*, TaskKind>;

  std::size_t max_batch_rows_;
  std::size_t max_queued_rows_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<Key, Queue> queues_;
  std::size_t total_rows_ = 0;
  bool stopped_ = false;
};

}  // namespace apiary::experts
