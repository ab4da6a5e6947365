// Random bytes from the operating system's CSPRNG (getrandom(2)), for keys, salts and UUIDs.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "result.h"

namespace rbdluks {

Status fill_random(std::span<uint8_t> out);
// `bytes` random bytes as lowercase hex (2 * bytes characters): nonces and ids, not keys.
Result<std::string> random_hex(size_t bytes);

}  // namespace rbdluks
