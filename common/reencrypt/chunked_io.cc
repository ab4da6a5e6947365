// for_each_chunk: a shared counter of chunks, and the first error.
#include "chunked_io.h"

#include <algorithm>
#include <atomic>
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

}  // namespace rbdluks
