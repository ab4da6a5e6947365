// EncryptedImage: what an application's rbd_image_t points to when the image opted in to the
// preload library, and the lookup that tells such a handle from librbd's own.
//
// Handles of images that did not opt in are librbd's, returned unchanged, so their calls pass
// straight through; only the lookup (one atomic load while no encrypted image is open) is added.
#pragma once
#include <rbd/librbd.h>

#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include <rbd_luks/image.h>

namespace rbdluks::preload {

struct EncryptedImage {
  std::unique_ptr<Image> image;  // the plaintext, through rbd-luks
  // The same RBD image opened by librbd's C API, for the calls that mean the same on the
  // ciphertext (calls_on_encrypted_images.txt: `raw`): snapshots, metadata, features.
  rbd_image_t raw = nullptr;

  // rbd_set_image_notification: completions of this handle's requests are queued for
  // rbd_poll_io_events and announced on fd, as librbd does for its own images.
  std::mutex events_mutex;
  int event_fd = -1;
  int event_type = 0;
  std::deque<rbd_completion_t> events;

  bool notifies() {
    const std::lock_guard lock(events_mutex);
    return event_fd >= 0;
  }
  void queue_event(rbd_completion_t c);
  int poll_events(rbd_completion_t* out, int max);
};

// The EncryptedImage behind `handle`, or nullptr when it is librbd's.
EncryptedImage* encrypted_image(rbd_image_t handle);
void register_encrypted_image(EncryptedImage* image);
void unregister_encrypted_image(EncryptedImage* image);

// Logs (once per function) that `function` has no meaning on an encrypted image; -EOPNOTSUPP.
int unsupported(const char* function, EncryptedImage& image);

}  // namespace rbdluks::preload
