// FileKeyring: read_secret_file / write_secret_file behind the Keyring interface.
#include "file_keyring.h"

#include <unistd.h>

#include <cerrno>

#include "secret_file.h"

namespace rbdluks {
namespace {

class FileKeyring final : public Keyring {
 public:
  Result<SecureBuffer> fetch(const std::string& locator) override {
    auto key = read_secret_file(locator);
    if (!key) return Error(Errc::key_unavailable, "key file:" + locator + ": " + key.error().message());
    if (key->empty()) return Error(Errc::key_unavailable, "key file:" + locator + " is empty");
    return key;
  }

  Result<KeyReference> store(std::span<const uint8_t> key, const std::string& path) override {
    if (::access(path.c_str(), F_OK) == 0) {
      return Error(Errc::key_unavailable, "key file:" + path + " already exists; not overwriting it");
    }
    if (auto written = write_secret_file(path, key); !written) {
      return Error(Errc::key_unavailable, "storing key file:" + path + ": " + written.error().message());
    }
    return KeyReference{"file", path};
  }

  Status remove(const std::string& locator) override {
    if (::unlink(locator.c_str()) != 0 && errno != ENOENT) return errno_error("remove key file:" + locator);
    return {};
  }
};

}  // namespace

std::unique_ptr<Keyring> make_file_keyring() { return std::make_unique<FileKeyring>(); }

}  // namespace rbdluks
