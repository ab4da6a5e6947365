// read_secret_file / write_secret_file: plain read(2)/write(2) into SecureBuffers.
#include "secret_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rbdluks {

Result<SecureBuffer> read_secret_file(const std::string& path, size_t max_size) {
  if (path == "-") return read_secret_fd(STDIN_FILENO, "standard input", max_size);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Error e = errno_error("open " + path);
    return errno == ENOENT ? Error(Errc::not_found, e.message()) : e;
  }
  auto secret = read_secret_fd(fd, path, max_size);
  ::close(fd);
  return secret;
}

Result<SecureBuffer> read_secret_fd(int fd, const std::string& where, size_t max_size) {
  SecureBuffer buffer(4096);
  size_t used = 0;
  Status status;
  for (;;) {
    if (used == buffer.size()) {
      if (buffer.size() > max_size) break;
      SecureBuffer bigger(buffer.size() * 2);
      std::memcpy(bigger.data(), buffer.data(), used);
      buffer = std::move(bigger);
    }
    const ssize_t n = ::read(fd, buffer.data() + used, buffer.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      status = errno_error("read " + where);
      break;
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  if (!status) return std::move(status).error();
  if (used > max_size) {
    return Error(Errc::usage, where + " holds more than " + std::to_string(max_size) + " bytes");
  }
  buffer.shrink(used);
  return buffer;
}

namespace {

// Makes the open file fd at path 0600, writes bytes and syncs them; closes fd.
Status fill_secret_file(int fd, const std::string& path, std::span<const uint8_t> bytes) {
  Status status;
  if (fchmod(fd, 0600) != 0) status = errno_error("chmod " + path);
  size_t done = 0;
  while (status && done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      status = errno_error("write " + path);
    else
      done += static_cast<size_t>(n);
  }
  if (status && fsync(fd) != 0) status = errno_error("sync " + path);
  ::close(fd);
  return status;
}

}  // namespace

Status write_secret_file(const std::string& path, std::span<const uint8_t> bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("create " + path);
  return fill_secret_file(fd, path, bytes);
}

Status create_secret_file(const std::string& path, std::span<const uint8_t> bytes) {
  // O_EXCL makes "does it exist?" and "create it" one step; with O_CREAT it also refuses a symlink,
  // dangling or not.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno_error("create " + path);
  Status filled = fill_secret_file(fd, path, bytes);
  // The file is this call's own (O_EXCL), so a half-written one can go.
  if (!filled) ::unlink(path.c_str());
  return filled;
}

}  // namespace rbdluks
