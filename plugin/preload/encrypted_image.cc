// EncryptedImage and the registry of open ones: see encrypted_image.h.
#include "encrypted_image.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_set>

namespace rbdluks::preload {
namespace {

struct Registry {
  std::atomic<size_t> count{0};
  std::shared_mutex mutex;
  std::unordered_set<const void*> images;
};

Registry& registry() {
  static auto* const r = new Registry;  // never destroyed: calls may come during exit
  return *r;
}

}  // namespace

EncryptedImage* encrypted_image(rbd_image_t handle) {
  Registry& r = registry();
  if (r.count.load(std::memory_order_acquire) == 0) return nullptr;
  const std::shared_lock lock(r.mutex);
  return r.images.contains(handle) ? static_cast<EncryptedImage*>(handle) : nullptr;
}

void register_encrypted_image(EncryptedImage* image) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  r.images.insert(image);
  r.count.store(r.images.size(), std::memory_order_release);
}

void unregister_encrypted_image(EncryptedImage* image) {
  Registry& r = registry();
  const std::lock_guard lock(r.mutex);
  r.images.erase(image);
  r.count.store(r.images.size(), std::memory_order_release);
}

int unsupported(const char* function, EncryptedImage& image) {
  static std::mutex mutex;
  static std::set<std::string> reported;
  const std::lock_guard lock(mutex);
  if (reported.insert(function).second) {
    std::fprintf(stderr, "rbd-luks preload: %s is not supported on the encrypted image %s\n", function,
                 image.image->name().c_str());
  }
  return -EOPNOTSUPP;
}

void EncryptedImage::queue_event(rbd_completion_t c) {
  const std::lock_guard lock(events_mutex);
  events.push_back(c);
  // As librbd's EventSocket: one byte on a pipe, a count of one on an eventfd.
  if (event_type == EVENT_TYPE_EVENTFD) {
    eventfd_write(event_fd, 1);
  } else {
    const char byte = 'i';
    [[maybe_unused]] const ssize_t n = write(event_fd, &byte, 1);
  }
}

int EncryptedImage::poll_events(rbd_completion_t* out, int max) {
  const std::lock_guard lock(events_mutex);
  int n = 0;
  while (n < max && !events.empty()) {
    out[n++] = events.front();
    events.pop_front();
  }
  return n;
}

}  // namespace rbdluks::preload
