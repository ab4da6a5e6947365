// for_each_chunk: a shared counter of chunks, and the first error. pipeline_steps: one read ahead.
#include "chunked_io.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace rbdluks {

Status for_each_chunk(uint64_t length, uint64_t chunk, unsigned threads,
                      const std::function<Status(uint64_t begin, uint64_t end)>& fn) {
  const uint64_t count = (length + chunk - 1) / chunk;
  std::atomic<uint64_t> next{0};
  std::mutex mutex;
  std::optional<Error> first_error;
  const auto work = [&] {
    for (uint64_t i = next++; i < count; i = next++) {
      Status done = fn(i * chunk, std::min(length, (i + 1) * chunk));
      if (!done) {
        const std::lock_guard lock(mutex);
        if (!first_error) first_error = std::move(done).error();
        next = count;
      }
    }
  };
  std::vector<std::thread> helpers;
  try {
    for (uint64_t t = 1; t < std::min<uint64_t>(threads, count); ++t) helpers.emplace_back(work);
  } catch (const std::system_error&) {
    // Out of threads: those that started, and this one, do all the chunks.
  }
  work();
  for (auto& helper : helpers) helper.join();
  if (first_error) return *first_error;
  return {};
}

Status pipeline_steps(size_t count, const std::function<Status(size_t)>& read,
                      const std::function<Status(size_t)>& step) {
  const auto start_read = [&](size_t i) {
    const auto read_i = [&read, i] { return read(i); };
    try {
      return std::async(std::launch::async, read_i);
    } catch (const std::system_error&) {
      return std::async(std::launch::deferred, read_i);  // out of threads: read when the step needs it
    }
  };
  std::future<Status> next;
  if (count > 0) next = start_read(0);
  for (size_t i = 0; i < count; ++i) {
    Status done = next.get();
    if (done && i + 1 < count) next = start_read(i + 1);
    if (done) done = step(i);
    if (!done) {
      if (next.valid()) next.wait();  // a read ahead still running must end before its buffer goes
      return done;
    }
  }
  return {};
}

}  // namespace rbdluks
