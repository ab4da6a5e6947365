// The format options of docs/cli.md (--type, --cipher, --key-size, --sector-size, the KDF options,
// --data-offset, --uuid), for the commands that write a new header: create, format, encrypt.
#pragma once

#include "command_line.h"
#include "luks_volume.h"
#include "result.h"

namespace rbdluks::cli {

// Errc::usage naming the option that is wrong.
Result<FormatOptions> format_options_from(const CommandLine& cl);

}  // namespace rbdluks::cli
