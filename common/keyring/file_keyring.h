// FileKeyring: keys kept in local files ("file:PATH"), 0600, read as exact bytes. For tests, offline
// work and operators who keep keys in their own secret store mounted as files.
#pragma once

#include <memory>
#include <string>

#include "keyring.h"

namespace rbdluks {

std::unique_ptr<Keyring> make_file_keyring();

}  // namespace rbdluks
