// The header lock of an image file (header_lock.h): an exclusive flock(2) on the file, which
// every process that changes the file's header takes through FileImage. flock locks belong to an
// open file description, so two FileImages on one file exclude each other even in one process,
// and the kernel drops the lock when its holder exits, however it exits.
#pragma once

#include <memory>
#include <string>

#include "header_lock.h"
#include "result.h"

namespace rbdluks {

// Waits for an exclusive flock on fd (an open descriptor of the file `name`), which must stay open
// while the lock is held.
Result<std::unique_ptr<HeaderLock>> lock_file_header(int fd, const std::string& name);

}  // namespace rbdluks
