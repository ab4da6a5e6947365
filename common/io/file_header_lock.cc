// FileHeaderLock: flock(LOCK_EX | LOCK_NB) tried until it is granted or the wait is over.
#include "file_header_lock.h"

#include <sys/file.h>

#include <cerrno>
#include <utility>

namespace rbdluks {
namespace {

class FileHeaderLock final : public HeaderLock {
 public:
  FileHeaderLock(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  ~FileHeaderLock() override { static_cast<void>(release()); }
  FileHeaderLock(const FileHeaderLock&) = delete;
  FileHeaderLock& operator=(const FileHeaderLock&) = delete;

  // Nothing to announce: file images have no clients that watch them.
  Status release() override {
    if (fd_ < 0) return {};
    const int fd = std::exchange(fd_, -1);
    if (flock(fd, LOCK_UN) != 0) return errno_error("release the header lock of " + name_);
    return {};
  }

 private:
  int fd_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<HeaderLock>> lock_file_header(int fd, const std::string& name) {
  return wait_for_header_lock(name, [&]() -> Result<HeaderLockAttempt> {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return HeaderLockAttempt{std::make_unique<FileHeaderLock>(fd, name), ""};
    if (errno != EWOULDBLOCK && errno != EINTR) return errno_error("lock the header of " + name);
    return HeaderLockAttempt{nullptr, "another process holds an flock on the file"};
  });
}

}  // namespace rbdluks
