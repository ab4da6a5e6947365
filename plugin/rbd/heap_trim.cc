// Heap trimming: one detached thread per process, which polls a byte counter and the time of the
// last request. It is never stopped: it holds nothing but two atomics, and a process that exits
// takes it along (librbd_luks.so is linked -z nodelete, so its code is never unloaded under it). A
// child forked after the thread started has no such thread and does not trim.
#include "heap_trim.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <system_error>
#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rbdluks {
namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(250);

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Trimmer {
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> last_request_ms{0};
  std::once_flag started;

  [[noreturn]] void run() {
    for (;;) {
      std::this_thread::sleep_for(kPollInterval);
      if (bytes.load(std::memory_order_relaxed) < kTrimAfterBytes) continue;
      if (now_ms() - last_request_ms.load(std::memory_order_relaxed) < kTrimAfterIdleMs) continue;
      bytes.store(0, std::memory_order_relaxed);
#if defined(__GLIBC__)
      malloc_trim(0);
#endif
    }
  }
};

// Never destroyed: the thread may still read it while static objects go at exit.
Trimmer& trimmer() {
  static Trimmer* const instance = new Trimmer;
  return *instance;
}

}  // namespace

void note_ciphertext(uint64_t bytes) {
  Trimmer& t = trimmer();
  std::call_once(t.started, [] {
    // The thread takes no signal meant for the application, whichever thread it starts from.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
      std::thread([] { trimmer().run(); }).detach();
    } catch (const std::system_error&) {
      // No thread, no trimming: memory stays as glibc keeps it, which is only less tidy.
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  });
  t.bytes.fetch_add(bytes, std::memory_order_relaxed);
  t.last_request_ms.store(now_ms(), std::memory_order_relaxed);
}

}  // namespace rbdluks
