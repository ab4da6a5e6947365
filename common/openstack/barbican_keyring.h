// BarbicanKeyring: keys in OpenStack Barbican ("barbican:SECRET_UUID"), the key manager that Cinder
// keeps its volume keys in, with Keystone v3 authentication.
//
// fetch reads the secret's payload as application/octet-stream; store creates a symmetric secret
// ("aes", bit_length = 8 * key bytes, as castellan stores Cinder's keys) and returns its UUID;
// discard deletes it. Barbican's URL comes from the token's service catalog (type key-manager) unless
// set explicitly. A locator may also be a full secret_ref URL: only its UUID is used, so the token
// is only ever sent to the configured Barbican, whatever an image's metadata says. Every failure is
// Errc::key_unavailable, naming the secret and the HTTP status or connection error.
#pragma once

#include <memory>
#include <string>

#include "keyring.h"
#include "keystone_auth.h"

namespace rbdluks {

struct BarbicanEndpoint {
  std::string url;                   // explicit Barbican URL; empty: from the Keystone catalog
  std::string interface = "public";  // catalog interface
  std::string region;                // catalog region; empty: any
};

std::unique_ptr<Keyring> make_barbican_keyring(std::shared_ptr<KeystoneAuth> auth, BarbicanEndpoint endpoint);

// The secret UUID a locator names: the UUID itself, or a secret_ref URL ".../v1/secrets/UUID".
Result<std::string> barbican_secret_uuid(const std::string& locator);

}  // namespace rbdluks
