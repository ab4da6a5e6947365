// The one place keyring adapters are registered: a reference's scheme picks the adapter. Adding an
// adapter (Vault, KMIP) is a new file plus one line in keyring_registry.cc.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "key_reference_policy.h"
#include "keyring.h"
#include "rbd_connection.h"

namespace rbdluks {

// What adapters may need, obtained lazily so that e.g. a file: reference never connects to Ceph.
struct KeyringEnvironment {
  std::function<Result<std::shared_ptr<RbdConnection>>()> ceph;
  // rbd-luks's config file (--config) for the OpenStack settings; std::nullopt: $RBD_LUKS_CONF,
  // else /etc/rbd-luks/rbd-luks.conf (see openstack_settings.h).
  std::optional<std::string> config_path;
};

Result<std::unique_ptr<Keyring>> open_keyring(const std::string& scheme, const KeyringEnvironment& environment);

// The schemes of the registered adapters, sorted: "barbican, config-key, file".
std::string keyring_schemes();
bool is_keyring_scheme(const std::string& scheme);

// KeyReferencePolicy::parse with the registered schemes.
Result<KeyReferencePolicy> parse_key_reference_policy(const std::string& text);

// Convenience: fetch the key bytes a reference names. Errors name the reference.
Result<SecureBuffer> fetch_key(const KeyReference& reference, const KeyringEnvironment& environment);

}  // namespace rbdluks
