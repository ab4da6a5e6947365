// Completions: see completion.h. Also librbd's completion functions, which answer for records that
// finish() completed and pass the others to librbd.
#include "completion.h"

#include <new>

#include "encrypted_image.h"
#include "real_librbd.h"

namespace rbdluks::preload {
namespace {

// librbd runs this with the record as its argument; the application sees its own.
void relay(rbd_completion_t c, void* arg) {
  auto* record = static_cast<CompletionRecord*>(arg);
  if (record->callback != nullptr) record->callback(c, record->arg);
  record->put();
}

const auto real_get_arg = RBDLUKS_REAL_LIBRBD(rbd_aio_get_arg);

}  // namespace

CompletionRecord& record_of(rbd_completion_t c) { return *static_cast<CompletionRecord*>(real_get_arg(c)); }

void claim(rbd_completion_t c) {
  CompletionRecord& record = record_of(c);
  record.references.fetch_add(1, std::memory_order_relaxed);
  record.finished_here.store(true, std::memory_order_release);
}

void unclaim(rbd_completion_t c) {
  CompletionRecord& record = record_of(c);
  record.finished_here.store(false, std::memory_order_release);
  record.put();
}

void finish(rbd_completion_t c, ssize_t result, EncryptedImage* notify) {
  // Not record_of(c) after the callback: it may have released c.
  CompletionRecord& record = record_of(c);
  record.result.store(result, std::memory_order_release);
  record.calling_back.store(true, std::memory_order_release);
  if (record.callback != nullptr) record.callback(c, record.arg);
  if (notify != nullptr) notify->queue_event(c);
  {
    const std::lock_guard lock(record.mutex);
    record.done.store(true, std::memory_order_release);
    record.done_changed.notify_all();
  }
  // Its own reference, and librbd's callback's: librbd never completes a claimed completion.
  record.put(2);
}

}  // namespace rbdluks::preload

using rbdluks::preload::CompletionRecord;
using rbdluks::preload::record_of;

extern "C" {

int rbd_aio_create_completion(void* cb_arg, rbd_callback_t complete_cb, rbd_completion_t* c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_aio_create_completion);
  auto* record = new (std::nothrow) CompletionRecord;
  if (record == nullptr) return -ENOMEM;
  record->callback = complete_cb;
  record->arg = cb_arg;
  const int r = real(record, rbdluks::preload::relay, c);
  if (r < 0) delete record;
  return r;
}

void* rbd_aio_get_arg(rbd_completion_t c) { return record_of(c).arg; }

int rbd_aio_is_complete(rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_aio_is_complete);
  CompletionRecord& record = record_of(c);
  if (record.finished_here.load(std::memory_order_acquire)) return record.calling_back.load(std::memory_order_acquire);
  return real(c);
}

int rbd_aio_wait_for_complete(rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_aio_wait_for_complete);
  CompletionRecord& record = record_of(c);
  if (!record.finished_here.load(std::memory_order_acquire)) return real(c);
  std::unique_lock lock(record.mutex);
  record.done_changed.wait(lock, [&] { return record.done.load(std::memory_order_acquire); });
  return 0;
}

ssize_t rbd_aio_get_return_value(rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_aio_get_return_value);
  CompletionRecord& record = record_of(c);
  if (record.finished_here.load(std::memory_order_acquire)) return record.result.load(std::memory_order_acquire);
  return real(c);
}

void rbd_aio_release(rbd_completion_t c) {
  static const auto real = RBDLUKS_REAL_LIBRBD(rbd_aio_release);
  static const auto real_is_complete = RBDLUKS_REAL_LIBRBD(rbd_aio_is_complete);
  CompletionRecord& record = record_of(c);
  // Never claimed and never completed by librbd: it was never submitted (releasing a request in
  // flight is a mistake under librbd too), so relay() will not run to drop its reference.
  const bool never_submitted = !record.finished_here.load(std::memory_order_acquire) && real_is_complete(c) == 0;
  real(c);
  record.put(never_submitted ? 2 : 1);
}

}  // extern "C"
