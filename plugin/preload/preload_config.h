// The preload library's settings: which images it decrypts and where their keys come from.
//
// An image is decrypted when its metadata has rbd-luks.preload = on (`rbd-luks preload enable`) or
// when the client's settings file lists it; every other image passes through to librbd. The file
// is $RBD_LUKS_PRELOAD_CONF, else /etc/ceph/rbd-luks-preload.conf, and may be absent:
//
//   image = POOL[/NAMESPACE]/IMAGE     # opt this image in on this client (repeatable)
//   accept-key-refs = config-key,barbican   # key references it may follow (rbd-luks --accept-key-refs)
//   passphrase-file = PATH             # the passphrase of images that record no key reference
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace rbdluks::preload {

struct PreloadConfig {
  std::string path;
  std::string error;  // why the file could not be used; opted-in images then fail to open
  std::vector<std::string> images;
  std::optional<std::string> accept_key_refs;
  std::optional<std::string> passphrase_file;
};

// Read once, at the first open.
const PreloadConfig& preload_config();

}  // namespace rbdluks::preload
