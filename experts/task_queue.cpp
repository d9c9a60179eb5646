#include "experts/task_queue.hpp"

#include "core/error.hpp"

#include <asio/post.hpp>

namespace apiary::experts {

void Task::complete(const std::shared_ptr<Task>& task) {
  asio::post(task->timer.get_executor(), [task] {
    task->completed = true;
    task->timer.cancel();
  });
}

TaskQueue::TaskQueue(std::size_t max_batch_rows, std::size_t max_queued_rows_per_expert)
    : max_batch_rows_(std::max<std::size_t>(max_batch_rows, 1)),
      max_queued_rows_(max_queued_rows_per_expert) {}

void TaskQueue::submit(TaskPtr task) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) throw Error(Errc::unavailable, "expert server is stopping");
    auto& queue = queues_[{task->backend.get(), task->kind}];
    if (queue.rows + task->rows > max_queued_rows_ && !queue.tasks.empty()) {
      throw Error(Errc::resource_exhausted,
                  task->backend->uid() + ": queue full (" + std::to_string(queue.rows) + " rows)");
    }
    task->enqueued = std::chrono::steady_clock::now();
    queue.rows += task->rows;
    total_rows_ += task->rows;
    queue.tasks.push_back(std::move(task));
  }
  cv_.notify_one();
}

std::optional<TaskBatch> TaskQueue::next() {
  std::unique_lock lock(mutex_);
  while (true) {
    if (stopped_) return std::nullopt;
    // The queue whose head waited longest goes first (fair across experts).
    Queue* best = nullptr;
    for (auto& [key, queue] : queues_) {
      if (queue.tasks.empty()) continue;
      if (!best || queue.tasks.front()->enqueued < best->tasks.front()->enqueued) best = &queue;
    }
    if (!best) {
      cv_.wait(lock);
      continue;
    }
    TaskBatch batch;
    batch.backend = best->tasks.front()->backend;
    batch.kind = best->tasks.front()->kind;
    while (!best->tasks.empty()) {
      auto& task = best->tasks.front();
      if (!batch.tasks.empty() && batch.rows + task->rows > max_batch_rows_) break;
      batch.rows += task->rows;
      best->rows -= task->rows;
      total_rows_ -= task->rows;
      batch.tasks.push_back(std::move(task));
      best->tasks.pop_front();
    }
    return batch;
  }
}

std::vector<TaskPtr> TaskQueue::stop() {
  std::vector<TaskPtr> left;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    for (auto& [key, queue] : queues_) {
      for (auto& task : queue.tasks) left.push_back(std::move(task));
      queue.tasks.clear();
      queue.rows = 0;
    }
    total_rows_ = 0;
  }
  cv_.notify_all();
  return left;
}

std::size_t TaskQueue::queued_rows() const {
  std::lock_guard lock(mutex_);
  return total_rows_;
}

}  // namespace apiary::experts
