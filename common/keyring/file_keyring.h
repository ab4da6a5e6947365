// FileKeyring: keys kept in local files ("file:PATH"), read as exact bytes. For tests, offline
// work and operators who keep keys in their own secret store mounted as files. A key file must be a
// regular file (not a symlink), belong to the caller or root and be private to its owner (no group
// or other permission bits); anything else is Errc::key_unavailable naming the file and the reason.
#pragma once

#include <memory>
#include <string>

#include "keyring.h"

namespace rbdluks {

std::unique_ptr<Keyring> make_file_keyring();

}  // namespace rbdluks
