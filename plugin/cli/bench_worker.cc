// BenchWorker: fixed-size messages over two pipes. Each message is far below PIPE_BUF, but reads
// and writes still loop, because a signal (the operator's Ctrl-C) can interrupt them.
#include "bench_worker.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <vector>

#include "process_memory.h"

namespace rbdluks::cli {
namespace {

struct Reply {
  enum Kind : uint32_t { ready, measured, failed } kind = failed;
  Measurement measurement;
  char message[480] = {};
};
static_assert(std::is_trivially_copyable_v<Reply> && std::is_trivially_copyable_v<LoadSpec>);

// Writes all of `bytes`; false when the other end is gone.
bool write_all(int fd, const void* data, size_t bytes) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    bytes -= static_cast<size_t>(n);
  }
  return true;
}

// Reads exactly `bytes`: 1 when done, 0 at end of file before any byte, -1 on error or a short
// message. `on_interrupt` runs each time a signal interrupts the wait.
template <typename F>
int read_all(int fd, void* data, size_t bytes, F on_interrupt) {
  auto* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < bytes) {
    const ssize_t n = ::read(fd, p + got, bytes - got);
    if (n < 0 && errno == EINTR) {
      on_interrupt();
      continue;
    }
    if (n <= 0) return n == 0 && got == 0 ? 0 : -1;
    got += static_cast<size_t>(n);
  }
  return 1;
}

// The parent's ends of every live worker's pipes. A child forked later inherits them (O_CLOEXEC
// acts on exec only) and must close them, or an earlier worker would never see its request pipe
// end and would wait for requests forever.
std::vector<int>& parent_ends() {
  static std::vector<int> fds;
  return fds;
}

}  // namespace

void WorkerChannel::ready() {
  Reply reply;
  reply.kind = Reply::ready;
  write_all(replies_, &reply, sizeof reply);
}

std::optional<LoadSpec> WorkerChannel::next() {
  LoadSpec spec;
  if (read_all(requests_, &spec, sizeof spec, [] {}) != 1) return std::nullopt;
  return spec;
}

void WorkerChannel::reply(const Measurement& measurement) {
  Reply reply;
  reply.kind = Reply::measured;
  reply.measurement = measurement;
  write_all(replies_, &reply, sizeof reply);
}

void WorkerChannel::fail(const std::string& message) {
  Reply reply;
  reply.kind = Reply::failed;
  std::strncpy(reply.message, message.c_str(), sizeof reply.message - 1);
  write_all(replies_, &reply, sizeof reply);
}

Result<std::unique_ptr<BenchWorker>> BenchWorker::start(const std::function<int(WorkerChannel&)>& body,
                                                        const std::atomic<bool>& stop) {
  int requests[2], replies[2];
  if (pipe2(requests, O_CLOEXEC) != 0) return errno_error("pipe");
  if (pipe2(replies, O_CLOEXEC) != 0) {
    Error error = errno_error("pipe");
    close(requests[0]);
    close(requests[1]);
    return error;
  }
  std::fflush(nullptr);  // or each child would write the parent's buffered output again
  const pid_t pid = fork();
  if (pid < 0) {
    Error error = errno_error("fork");
    for (int fd : {requests[0], requests[1], replies[0], replies[1]}) close(fd);
    return error;
  }
  if (pid == 0) {
    close(requests[1]);
    close(replies[0]);
    for (int fd : parent_ends()) close(fd);
    WorkerChannel channel(requests[0], replies[1]);
    const int status = body(channel);
    std::fflush(nullptr);
    _exit(status);
  }
  close(requests[0]);
  close(replies[1]);
  parent_ends().insert(parent_ends().end(), {requests[1], replies[0]});
  std::unique_ptr<BenchWorker> worker(new BenchWorker(pid, requests[1], replies[0]));
  RL_TRY(worker->receive(stop));
  return worker;
}

BenchWorker::~BenchWorker() {
  std::erase_if(parent_ends(), [&](int fd) { return fd == requests_ || fd == replies_; });
  close(requests_);
  close(replies_);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

Result<Measurement> BenchWorker::run(const LoadSpec& spec, const std::atomic<bool>& stop) {
  if (!write_all(requests_, &spec, sizeof spec)) return Error(Errc::failure, "the benchmark's worker process is gone");
  return receive(stop);
}

Result<Measurement> BenchWorker::receive(const std::atomic<bool>& stop) {
  Reply reply;
  bool passed_on = false;
  const int r = read_all(replies_, &reply, sizeof reply, [&] {
    if (stop.load() && !passed_on) {
      kill(pid_, SIGINT);
      passed_on = true;
    }
  });
  if (r != 1) return Error(Errc::failure, "the benchmark's worker process ended without a result");
  if (reply.kind == Reply::failed) return Error(Errc::failure, reply.message);
  return reply.measurement;
}

}  // namespace rbdluks::cli
