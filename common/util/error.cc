// The rbd-luks error category (names for the Errc values) and the errno that stands for an Error.
#include "error.h"

#include <cerrno>
#include <cstring>

namespace rbdluks {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "rbd-luks"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::failure:
        return "failure";
      case Errc::usage:
        return "usage error";
      case Errc::bad_key:
        return "no keyslot opens with this key";
      case Errc::bad_header:
        return "no valid LUKS header";
      case Errc::key_unavailable:
        return "key could not be fetched";
      case Errc::unsupported:
        return "unsupported LUKS feature";
      case Errc::no_space:
        return "not enough space";
      case Errc::not_found:
        return "not found";
    }
    return "unknown error";
  }
};

}  // namespace

const std::error_category& rbdluks_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept { return {static_cast<int>(e), rbdluks_category()}; }

Error errno_error(const std::string& what) {
  const int err = errno;
  return Error(std::error_code(err, std::generic_category()), what + ": " + std::generic_category().message(err));
}

int negative_errno(const Error& error) {
  if (error.code().category() == std::generic_category()) return -error.code().value();
  if (error.code().category() != rbdluks_category()) return -EIO;
  switch (static_cast<Errc>(error.code().value())) {
    case Errc::bad_key:
    case Errc::key_unavailable:
      return -EACCES;
    case Errc::bad_header:
    case Errc::usage:
      return -EINVAL;
    case Errc::unsupported:
      return -EOPNOTSUPP;
    case Errc::not_found:
      return -ENOENT;
    case Errc::no_space:
      return -ENOSPC;
    case Errc::failure:
      break;
  }
  return -EIO;
}

}  // namespace rbdluks
