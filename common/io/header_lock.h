// HeaderLock: the right to change a volume's LUKS header and the metadata that belongs to it (the
// key reference), which one client at a time holds, across processes and hosts.
//
// A header change is a read-modify-write of the header: two clients that both read the header
// before either writes it back would each drop the other's change (a keyslot added by one is gone
// after the other writes). So every header change (format, keyslot add and remove, resize, key-ref
// set and clear) takes this lock, reads the header as it is now, changes that, and releases the
// lock. RawImage::lock_header hands it out: on RBD a RADOS object lock on the image's header object
// (plugin/rbd/rbd_header_lock.h), on files an flock(2) on the file.
//
// A client that finds the lock taken tries again for a while (RBD_LUKS_LOCK_TIMEOUT seconds,
// default 30), then gives up with an error that names the holder where the backend knows it.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "result.h"

namespace rbdluks {

class HeaderLock {
 public:
  // Releases the lock if release() did not, and then reports nothing.
  virtual ~HeaderLock() = default;
  // Lets the image's other clients know that the header may have changed (RBD: they re-read it),
  // then gives up the lock.
  virtual Status release() = 0;
};

// One try at the lock: the lock, or who holds it (for the message when waiting is over).
struct HeaderLockAttempt {
  std::unique_ptr<HeaderLock> lock;
  std::string holder;
};

// Calls attempt() until it returns the lock or an error, sleeping a little longer between tries
// each time; gives up with Errc::failure "<image_name>: another client is changing the LUKS header
// (<holder>) ..." once RBD_LUKS_LOCK_TIMEOUT seconds (default 30; 0: try once) have passed.
Result<std::unique_ptr<HeaderLock>> wait_for_header_lock(const std::string& image_name,
                                                         const std::function<Result<HeaderLockAttempt>()>& attempt);

// Who takes a lock for `purpose` ("rbd-luks keyslot add"), as other clients are told while they
// wait: "rbd-luks keyslot add, pid 42 on host1".
std::string header_lock_holder(const std::string& purpose);

}  // namespace rbdluks
