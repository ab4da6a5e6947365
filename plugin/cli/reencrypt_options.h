// What a reencryption takes from the command line, for `reencrypt` and `nbd-server --reencrypt`.
#pragma once

#include <vector>

#include "command_line.h"
#include "reencryption.h"
#include "result.h"
#include "secure_buffer.h"
#include "target.h"

namespace rbdluks::cli {

// --cipher, --key-size, --sector-size, --resilience-hash (none of them when resuming), --hotzone-size,
// --threads and --force; a progress bar on a terminal; SIGINT or SIGTERM stops the run between steps.
Result<ReencryptOptions> reencrypt_options_from(const CommandLine& cl, const Target& target, bool resuming);

// The passphrases of the other keyslots, one per --keyslot-passphrase-file, so that they keep working.
Result<std::vector<SecureBuffer>> keyslot_passphrase_files(const CommandLine& cl);

}  // namespace rbdluks::cli
