// BenchWorker: one child process per data path of `bench io`. Each path's client runs alone in its
// own process, so a run's peak memory (the resident set's high-water mark, reset before the run)
// and its CPU time are that path's alone: in one shared process the paths' allocations would mix in
// one heap, and one path's leftovers would count against the next.
//
// The parent forks every worker before it starts a thread of its own (fork copies only the calling
// thread, so a process with librados's threads must not fork), then hands them one load at a time
// over a pipe and waits for the measurement.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "io_load.h"
#include "result.h"

namespace rbdluks::cli {

// One load's result as measured inside the worker.
struct Measurement {
  LoadResult load;
  uint64_t peak_resident_bytes = 0;  // high-water mark of the worker's resident set during the load
};

// The worker's side of the pipes.
class WorkerChannel {
 public:
  WorkerChannel(int requests, int replies) : requests_(requests), replies_(replies) {}
  // Tells the parent that set-up went well and loads may come.
  void ready();
  // The next load to run, or nullopt once the parent has no more (or is gone).
  std::optional<LoadSpec> next();
  void reply(const Measurement& measurement);
  // Ends set-up or a load with an error the parent reports as its own.
  void fail(const std::string& message);

 private:
  int requests_;
  int replies_;
};

class BenchWorker {
 public:
  // Runs body in a forked child, which exits with the status body returns (after body's own clean-up:
  // destructors run, atexit handlers do not). Returns once the child has called ready() or failed;
  // `stop` is passed on as in run().
  static Result<std::unique_ptr<BenchWorker>> start(const std::function<int(WorkerChannel&)>& body,
                                                    const std::atomic<bool>& stop);
  BenchWorker(const BenchWorker&) = delete;
  BenchWorker& operator=(const BenchWorker&) = delete;
  // Closes the request pipe, which ends the child's loop, and waits for it to exit.
  ~BenchWorker();

  // Runs one load in the child. When `stop` becomes set while it runs (the parent was interrupted),
  // the child is interrupted too, so its load ends early with what it measured.
  Result<Measurement> run(const LoadSpec& spec, const std::atomic<bool>& stop);

 private:
  BenchWorker(pid_t pid, int requests, int replies) : pid_(pid), requests_(requests), replies_(replies) {}
  Result<Measurement> receive(const std::atomic<bool>& stop);

  pid_t pid_;
  int requests_;  // write end
  int replies_;   // read end
};

}  // namespace rbdluks::cli
