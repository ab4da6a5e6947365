// Error values used at every library boundary of rbd-luks.
//
// Errors carry a code (what kind of failure, which decides the CLI exit code) and a one-line message
// that says what and where. Messages must never contain key material or passphrases.
#pragma once

#include <string>
#include <system_error>
#include <utility>

namespace rbdluks {

// The failure kinds callers branch on. Values map onto the CLI exit codes in docs/cli.md.
enum class Errc {
  failure = 1,          // anything else: I/O, cluster, internal
  usage = 2,            // bad arguments or options
  bad_key = 3,          // the key opens no keyslot
  bad_header = 4,       // no valid LUKS header, or a corrupt one
  key_unavailable = 5,  // the keyring refused or could not be reached
  unsupported = 6,      // valid LUKS, but a feature we do not implement (reported as exit 4 by the CLI)
  no_space = 7,         // the image or keyslot area is too small for the request
  not_found = 8,        // image, keyslot or key reference does not exist
};

const std::error_category& rbdluks_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;

class Error {
 public:
  Error(Errc code, std::string message) : code_(make_error_code(code)), message_(std::move(message)) {}
  Error(std::error_code code, std::string message) : code_(code), message_(std::move(message)) {}

  const std::error_code& code() const { return code_; }
  const std::string& message() const { return message_; }
  bool is(Errc e) const { return code_ == make_error_code(e); }

  // Prefixes the message with context: "reading header of file:x: " + message; not twice, when
  // the message names that place already ("file:x: no LUKS header").
  Error& context(const std::string& where) {
    if (!message_.starts_with(where + ": ")) message_ = where + ": " + message_;
    return *this;
  }

 private:
  std::error_code code_;
  std::string message_;
};

// An Error from the current errno, e.g. errno_error("pread file:/x").
Error errno_error(const std::string& what);

// The negative errno that stands for an Error, for interfaces that speak errno (the C API, the
// asynchronous callbacks): an errno-based error's own (librbd's -ESHUTDOWN stays -ESHUTDOWN), else
// the nearest one for its Errc, and -EIO for a plain failure.
int negative_errno(const Error& error);

}  // namespace rbdluks

template <>
struct std::is_error_code_enum<rbdluks::Errc> : std::true_type {};
