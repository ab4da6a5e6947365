// stored_key_passphrase: image metadata through librbd, then the keyring registry.
#include "stored_key.h"

#include <rbd/librbd.h>

#include <cstring>
#include <vector>

#include "keyring.h"
#include "keyring_registry.h"
#include "rbd_connection.h"

namespace rbdluks {
namespace {

// The value of metadata `key` of image `name`, or nullopt when it is absent.
Result<std::optional<std::string>> image_metadata(rados_ioctx_t io, const std::string& name, const char* key) {
  rbd_image_t image = nullptr;
  if (const int r = rbd_open_read_only(io, name.c_str(), &image, nullptr); r < 0) {
    return ceph_error(r, "open " + name + " to read its key reference");
  }
  std::vector<char> value(256);
  size_t len = value.size();
  int r = rbd_metadata_get(image, key, value.data(), &len);
  if (r == -ERANGE) {
    value.resize(len);
    r = rbd_metadata_get(image, key, value.data(), &len);
  }
  rbd_close(image);
  if (r == -ENOENT) return std::optional<std::string>();
  if (r < 0) return ceph_error(r, std::string("read metadata ") + key + " of " + name);
  // librbd NUL-terminates the value but leaves len at the buffer size.
  return std::optional<std::string>(std::string(value.data(), strnlen(value.data(), value.size())));
}

}  // namespace

Result<SecureBuffer> stored_key_passphrase(rados_ioctx_t io, const std::string& name, const KeyReferencePolicy& policy,
                                           const std::optional<std::string>& config_path) {
  RL_ASSIGN(auto ref_text, image_metadata(io, name, kKeyRefMetadataKey));
  if (!ref_text) return Error(Errc::usage, name + " records no key reference (see rbd-luks key-ref set)");
  RL_ASSIGN(auto reference, KeyReference::parse(*ref_text));
  RL_TRY(policy.check(reference, "the metadata of " + name));
  RL_ASSIGN(auto encoding_text, image_metadata(io, name, kPassphraseEncodingMetadataKey));
  PassphraseEncoding encoding = PassphraseEncoding::raw;
  if (encoding_text) {
    RL_ASSIGN(encoding, parse_passphrase_encoding(*encoding_text));
  }
  rados_t cluster = rados_ioctx_get_cluster(io);
  const KeyringEnvironment environment{
      [cluster]() -> Result<std::shared_ptr<RbdConnection>> { return RbdConnection::borrow(cluster); }, config_path};
  RL_ASSIGN(auto key, fetch_key(reference, environment));
  return encode_passphrase(key.span(), encoding);
}

}  // namespace rbdluks
