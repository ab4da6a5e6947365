// Heap trimming: a process-wide rate limit and glibc's malloc_trim.
#include "heap_trim.h"

#include <atomic>
#include <chrono>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rbdluks {

bool claim_heap_trim() {
  static std::atomic<int64_t> last_ms{INT64_MIN / 2};
  const int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
  int64_t last = last_ms.load(std::memory_order_relaxed);
  return now - last >= 1000 && last_ms.compare_exchange_strong(last, now, std::memory_order_relaxed);
}

void trim_heap() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace rbdluks
