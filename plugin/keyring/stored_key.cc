// stored_key_passphrase: image metadata through librbd (its C++ API, which a preloaded shim of the C
// API does not intercept), then the keyring registry.
#include "stored_key.h"

#include <rbd/librbd.hpp>

#include "keyring.h"
#include "keyring_registry.h"
#include "rbd_connection.h"

namespace rbdluks {
namespace {

// The value of metadata `key` of image `name`, or nullopt when it is absent.
Result<std::optional<std::string>> image_metadata(rados_ioctx_t io, const std::string& name, const char* key) {
  librados::IoCtx cxx_io;
  librados::IoCtx::from_rados_ioctx_t(io, cxx_io);
  librbd::Image image;
  if (const int r = librbd::RBD().open_read_only(cxx_io, image, name.c_str(), nullptr); r < 0) {
    return ceph_error(r, "open " + name + " to read its key reference");
  }
  std::string value;
  const int r = image.metadata_get(key, &value);
  image.close();
  if (r == -ENOENT) return std::optional<std::string>();
  if (r < 0) return ceph_error(r, std::string("read metadata ") + key + " of " + name);
  return std::optional<std::string>(std::move(value));
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

std::function<Result<SecureBuffer>(rados_ioctx_t io)> stored_key_source(std::string name, KeyReferencePolicy policy) {
  return [name = std::move(name), policy = std::move(policy)](rados_ioctx_t io) {
    return stored_key_passphrase(io, name, policy);
  };
}

}  // namespace rbdluks
