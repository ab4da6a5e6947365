// Completions the preload library can finish itself.
//
// An application creates completions before it says which image they are for, so every completion
// must work for both kinds. rbd_aio_create_completion makes a real librbd completion whose
// argument is a CompletionRecord holding the application's callback and argument: on an image that
// did not opt in, librbd completes it as usual (the record only relays the callback); on an
// encrypted image, rbd-luks's request completes the record (finish()), and the completion
// functions answer from it. The application's handle is librbd's either way, so librbd's own event
// queue (rbd_poll_io_events) returns the very handles the application submitted.
#pragma once
#include <rbd/librbd.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace rbdluks::preload {

struct EncryptedImage;

struct CompletionRecord {
  rbd_callback_t callback = nullptr;
  void* arg = nullptr;
  std::atomic<bool> finished_here{false};  // set when a request of an encrypted image took it
  // librbd's states: pending, then in the callback (rbd_aio_is_complete is true from here on), then
  // complete (rbd_aio_wait_for_complete returns).
  std::atomic<bool> calling_back{false};
  std::mutex mutex;
  std::condition_variable done_changed;
  std::atomic<bool> done{false};
  std::atomic<ssize_t> result{0};
  // The application's (until rbd_aio_release); librbd's callback's (until relay() has run, or
  // until it is clear that it never will); and a claimed request's (until finish() returns). QEMU
  // and fio release a completion inside its callback, and librbd may run the callback on another
  // thread after rbd_aio_is_complete turned true, when the application may release it already.
  std::atomic<int> references{2};

  void put(int n = 1) {
    if (references.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
  }
};

CompletionRecord& record_of(rbd_completion_t c);

// Claims `c` for a request of an encrypted image, before the request is submitted.
void claim(rbd_completion_t c);
// Undoes claim() when the request could not be submitted.
void unclaim(rbd_completion_t c);
// Completes a claimed `c` with `result` in librbd's order (io/AioCompletion.cc, complete()): the
// callback, then the event queue of `image` if it had notifications on, then the waiters of
// rbd_aio_wait_for_complete. rbd_aio_is_complete is true from the callback on.
void finish(rbd_completion_t c, ssize_t result, EncryptedImage* notify);

}  // namespace rbdluks::preload
