// IoLoad: keeps a fixed number of equal-sized requests in flight against an asynchronous block
// device for a while, as a fio randread/randwrite job does, and measures what came back: bytes,
// requests, wall time and this process's CPU time. `bench io` runs the same load against plain
// librbd, rbd-luks and librbd's native encryption, so the three differ only in the data path.
#pragma once

#include <rbd/librbd.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>

#include "encrypted_rbd_image.h"
#include "result.h"

namespace rbdluks::cli {

// One request's buffer and its completion; the load generator owns one per queue slot.
class IoSlot {
 public:
  virtual ~IoSlot() = default;
  // Called once per request, on a thread of the data path, with the byte count or a negative errno.
  virtual void complete(ssize_t result) = 0;
};

class AsyncBlockDevice {
 public:
  virtual ~AsyncBlockDevice() = default;
  virtual uint64_t size() const = 0;
  // Starts a read or a write of buffer at offset; slot->complete runs later, on another thread.
  virtual void submit(bool write, uint64_t offset, std::span<uint8_t> buffer, IoSlot* slot) = 0;
  // Waits until completed writes are durable; 0 or a negative errno.
  virtual int flush() = 0;
};

// An open librbd image, plain or with native encryption loaded (its size is then the plaintext size).
std::unique_ptr<AsyncBlockDevice> librbd_device(rbd_image_t image, uint64_t size);
std::unique_ptr<AsyncBlockDevice> rbd_luks_device(EncryptedRbdImage& image, uint64_t size);

struct LoadSpec {
  bool write = false;
  uint32_t block_size = 4096;
  // Requests start this many bytes past a block boundary (so with 512, 4 KiB requests each cover
  // parts of two 4 KiB sectors).
  uint32_t misalign = 0;
  uint32_t queue_depth = 1;
  // Random block-aligned (plus misalign) offsets (a seeded sequence, so every device sees the same one) for
  // `seconds`; or each block of the device once, in order, for filling it.
  bool fill_once = false;
  double seconds = 1;
  uint64_t seed = 1;
};

struct LoadResult {
  uint64_t bytes = 0;
  uint64_t requests = 0;
  double seconds = 0;      // wall time, first submission to last completion
  double cpu_seconds = 0;  // user + system time of the whole process meanwhile
};

// Fails on the first request that fails, after waiting for the others in flight. Stops early, with
// what was measured so far, once `stop` is set.
Result<LoadResult> run_load(AsyncBlockDevice& device, const LoadSpec& spec, const std::atomic<bool>& stop);

}  // namespace rbdluks::cli
