// WorkerPool: one shared FIFO queue; tasks run without the queue's lock held.
#include "worker_pool.h"

#include <algorithm>

namespace rbdluks {

WorkerPool::WorkerPool(unsigned threads) {
  threads_.reserve(std::max(threads, 1u));
  try {
    for (unsigned i = 0; i < std::max(threads, 1u); ++i) threads_.emplace_back([this] { run(); });
  } catch (...) {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    posted_.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
}

WorkerPool::~WorkerPool() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  posted_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::post(std::function<void()> task) {
  // Notified under the lock: once a worker can take the task, the task may finish the last request
  // and let the pool be destroyed, so the poster must be done with it by then.
  const std::lock_guard lock(mutex_);
  tasks_.push_back(std::move(task));
  posted_.notify_one();
}

unsigned WorkerPool::default_threads() { return std::clamp(std::thread::hardware_concurrency(), 1u, 4u); }

void WorkerPool::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    posted_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
    if (tasks_.empty()) return;  // stopping, and everything posted has run
    {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
    }
    lock.lock();
  }
}

}  // namespace rbdluks
