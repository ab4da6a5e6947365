// The header lock of an RBD image (header_lock.h): an exclusive RADOS object lock named
// "rbd-luks.header" on the image's header object (rbd_header.ID).
//
// Not librbd's own locks. Its exclusive lock (lock_acquire) needs the exclusive-lock feature, and
// while one client holds it by hand the others' writes fail with EROFS, so every client with the
// volume attached would stop; its advisory lock (lock_exclusive) is the same RADOS lock as that
// feature's, so it fails with EBUSY as soon as any client has written. A lock of our own name on
// the same object works with the feature on or off, leaves data I/O alone, and is gone with the
// image.
//
// A holder opens the image (so librbd watches the header object for it) before it takes the lock
// and releases the lock before closing the image. A holder that no longer watches the header object
// has therefore died or lost its connection: as librbd does with its exclusive lock, that holder is
// blocklisted and then its lock broken, so that a holder which was only cut off cannot write a
// stale header once it reconnects.
//
// Releasing the lock bumps the image metadata key rbd-luks.header-generation. librbd tells every
// client that has the image open about a metadata change (it does not about data writes, where the
// LUKS header lives), so open images learn that the header may have changed and re-read it.
#pragma once

#include <memory>
#include <string>

#include "header_lock.h"
#include "result.h"

namespace rbdluks {

class RbdImage;

inline constexpr const char* kHeaderGenerationMetadataKey = "rbd-luks.header-generation";

// Waits for the lock as wait_for_header_lock says. The lock must not outlive image.
Result<std::unique_ptr<HeaderLock>> lock_rbd_header(RbdImage& image, const std::string& purpose);

}  // namespace rbdluks
