// Stream: read/write for pipes, pread/pwrite and SEEK_DATA for regular files.
#include "stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "file_extents.h"

namespace rbdluks::cli {

Result<Stream> Stream::open_input(const std::string& path) {
  if (path == "-") return Stream(STDIN_FILENO, "standard input", false);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("open " + path);
  return Stream(fd, path, true);
}

Result<Stream> Stream::open_output(const std::string& path) {
  if (path == "-") return Stream(STDOUT_FILENO, "standard output", false);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("create " + path);
  return Stream(fd, path, true);
}

Stream::Stream(Stream&& other) noexcept : fd_(other.fd_), name_(std::move(other.name_)), owned_(other.owned_) {
  other.owned_ = false;
}

Stream::~Stream() {
  if (owned_) ::close(fd_);
}

std::optional<uint64_t> Stream::regular_size() const {
  struct stat st {};
  if (!owned_ || fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

Result<size_t> Stream::read_full(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(fd_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read " + name_);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status Stream::read_at(uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read " + name_);
    if (n == 0) {
      return Error(Errc::failure,
                   name_ + " ended at " + std::to_string(offset + done) + " bytes while being read: did it shrink?");
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::vector<Extent>> Stream::data_extents(uint64_t offset, uint64_t length) const {
  return file_data_extents(fd_, offset, length, name_);
}

Status Stream::write_full(std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("write " + name_);
    done += static_cast<size_t>(n);
  }
  return {};
}

Status Stream::write_at(uint64_t offset, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("write " + name_);
    done += static_cast<size_t>(n);
  }
  return {};
}

Status Stream::set_size(uint64_t size) {
  if (ftruncate(fd_, static_cast<off_t>(size)) != 0) return errno_error("set the size of " + name_);
  return {};
}

Status Stream::finish() {
  if (owned_ && fsync(fd_) != 0 && errno != EINVAL) return errno_error("sync " + name_);
  return {};
}

}  // namespace rbdluks::cli
