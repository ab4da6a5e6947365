// Reading and writing files that hold secrets (passphrases, raw keys) without the bytes ever
// passing through ordinary heap memory. Written files are created 0600.
#pragma once

#include <span>
#include <string>

#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

inline constexpr size_t kMaxSecretFileSize = 8u << 20;  // cryptsetup's default key file limit

// The file's exact bytes (no newline stripping); "-" reads standard input. At most max_size bytes;
// larger input is an error.
Result<SecureBuffer> read_secret_file(const std::string& path, size_t max_size = kMaxSecretFileSize);

// The rest of what fd holds, read the same way; `where` names it in errors. Does not close fd.
Result<SecureBuffer> read_secret_fd(int fd, const std::string& where, size_t max_size = kMaxSecretFileSize);

// Creates or truncates path with mode 0600 and writes bytes; refuses to follow a symlink.
Status write_secret_file(const std::string& path, std::span<const uint8_t> bytes);

// Creates path with mode 0600, writes bytes and syncs them; never touches an existing file (nor a
// symlink, even a dangling one): that fails with EEXIST (error code std::errc::file_exists). A
// failure after the file was created removes it again.
Status create_secret_file(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace rbdluks
