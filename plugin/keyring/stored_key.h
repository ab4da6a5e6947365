// The passphrase an image's own metadata points at (rbd-luks.key-ref and rbd-luks.passphrase-encoding,
// recorded by `rbd-luks format --new-key/--key-ref` or `key-ref set`), so library clients can open an
// image with no secret at hand. Keyrings that need Ceph (config-key) use the caller's cluster handle.
#pragma once

#include <rados/librados.h>

#include <functional>
#include <optional>
#include <string>

#include "key_reference_policy.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

// policy: the references accepted from the metadata. config_path: rbd-luks settings file for
// Barbican (nullopt: $RBD_LUKS_CONF, then the default path).
// Errc::usage when the image records no key reference; Errc::key_unavailable when the policy does not
// accept it or the key cannot be fetched.
Result<SecureBuffer> stored_key_passphrase(rados_ioctx_t io, const std::string& name,
                                           const KeyReferencePolicy& policy = {},
                                           const std::optional<std::string>& config_path = std::nullopt);

// stored_key_passphrase for image `name` and policy, as a function of an I/O context of its pool:
// for clients that fetch the key again later (a reencryption request), when the caller's I/O
// context may be gone.
std::function<Result<SecureBuffer>(rados_ioctx_t io)> stored_key_source(std::string name, KeyReferencePolicy policy);

}  // namespace rbdluks
