#pragma once
// SerialWorker: one thread that runs submitted jobs one after another. The
// collaborative optimizer uses it to average gradients in the background
// (SwarmServices::average blocks) while the training thread computes.
//
// Threading: submit() from any thread; the destructor lets the queued jobs
// finish, then joins (a job must therefore end by itself, e.g. by a deadline).
// Errors: an exception thrown by a job is delivered through its future.
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace apiary::optimizer {

class SerialWorker {
 public:
  SerialWorker();
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  std::future<void> submit(std::function<void()> job);

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<void()>> jobs_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace apiary::optimizer
