// FileKeyring: key files behind the Keyring interface. A file: reference can come from image
// metadata, which whoever can write the image controls, so fetch() trusts nothing about the path:
// it opens without following a symlink and without blocking (a FIFO would hang the reader
// forever), and accepts only a regular file that belongs to the caller or root and that no one
// else may read or write (else anyone could plant or swap the key a volume is opened with).
#include "file_keyring.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "secret_file.h"

namespace rbdluks {
namespace {

const char* file_type(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string octal(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Why fd (just opened from the reference) may not hold a key, or "" when it may.
std::string refusal(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return "fstat: " + std::generic_category().message(errno);
  if (!S_ISREG(st.st_mode)) return std::string("is ") + file_type(st.st_mode) + ", not a regular file";
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    return "belongs to uid " + std::to_string(st.st_uid) + ", neither to uid " + std::to_string(me) + " nor to root";
  }
  if ((st.st_mode & 077) != 0) {
    return "has mode " + octal(st.st_mode) + ": group or others may access it (chmod 600 it)";
  }
  return "";
}

// The bytes of the key file at path, if it passes the checks; errors name the file and the reason.
// Errc::not_found when it does not exist.
Result<SecureBuffer> read_key_file(const std::string& path) {
  const std::string where = "key file:" + path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) return Error(Errc::key_unavailable, where + ": is a symbolic link (not followed)");
    return Error(err == ENOENT ? Errc::not_found : Errc::key_unavailable,
                 where + ": " + std::generic_category().message(err));
  }
  if (const std::string why = refusal(fd); !why.empty()) {
    ::close(fd);
    return Error(Errc::key_unavailable, where + ": " + why);
  }
  auto key = read_secret_fd(fd, path);
  ::close(fd);
  if (!key) return Error(Errc::key_unavailable, where + ": " + key.error().message());
  return key;
}

class FileKeyring final : public Keyring {
 public:
  Result<SecureBuffer> fetch(const std::string& path) override {
    auto key = read_key_file(path);
    if (!key) return Error(Errc::key_unavailable, key.error().message());
    if (key->empty()) return Error(Errc::key_unavailable, "key file:" + path + " is empty");
    return key;
  }

  Result<KeyReference> store(std::span<const uint8_t> key, const std::string& path) override {
    // Recorded absolute, so that the reference means the same file whatever directory a later
    // client runs in.
    std::error_code error;
    const std::string absolute = std::filesystem::absolute(path, error).string();
    if (error) return Error(Errc::key_unavailable, "storing key file:" + path + ": " + error.message());
    if (auto created = create_secret_file(absolute, key); !created) {
      if (created.error().code() == std::errc::file_exists) {
        return Error(Errc::key_unavailable, "key file:" + absolute + " already exists; not overwriting it");
      }
      return Error(Errc::key_unavailable, "storing key file:" + absolute + ": " + created.error().message());
    }
    return KeyReference{"file", absolute};
  }

  Status discard(const std::string& path, std::span<const uint8_t> key) override {
    auto held = read_key_file(path);
    if (!held) {
      if (held.error().is(Errc::not_found)) return {};
      return Error(Errc::key_unavailable, held.error().message() + "; left in place");
    }
    if (!held->equals(key)) {
      return Error(Errc::key_unavailable, "key file:" + path + " no longer holds the key stored in it; left in place");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errno_error("remove key file:" + path);
    return {};
  }
};

}  // namespace

std::unique_ptr<Keyring> make_file_keyring() { return std::make_unique<FileKeyring>(); }

}  // namespace rbdluks
