// WorkerPool: a few threads for the CPU work of the asynchronous data path (decrypting what a large
// read brought back, encrypting a large write), so that librbd's completion thread never stalls
// behind AES while other completions wait.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rbdluks {

class WorkerPool {
 public:
  // Starts `threads` threads (at least 1). Throws std::system_error when a thread cannot start.
  explicit WorkerPool(unsigned threads);
  // Runs every task already posted, then joins the threads. Must not run on one of them.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues a task; tasks start in posting order on whichever thread is free.
  void post(std::function<void()> task);

  unsigned size() const { return static_cast<unsigned>(threads_.size()); }

  // The size used when the caller does not choose: the online CPUs, at most 4 (crypto runs at
  // gigabytes per second per core, so more threads only compete with librbd's own).
  static unsigned default_threads();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable posted_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace rbdluks
