// ConfigKeyKeyring: keys in the Ceph monitors' config-key store ("config-key:KEY"), through
// librados mon commands. Values are the raw key bytes (as `ceph config-key set KEY -i FILE` stores
// them). A client that may only read keys under a prefix needs the cap
//   mon 'allow command "config-key get" with "key" prefix "rbd-luks/"'
// (see docs/keyrings.md).
#pragma once

#include <memory>

#include "keyring.h"
#include "rbd_connection.h"

namespace rbdluks {

std::unique_ptr<Keyring> make_config_key_keyring(std::shared_ptr<RbdConnection> connection);

}  // namespace rbdluks
