// Random bytes from the operating system's CSPRNG (getrandom(2)), for keys, salts and UUIDs.
#pragma once

#include <cstdint>
#include <span>

#include "result.h"

namespace rbdluks {

Status fill_random(std::span<uint8_t> out);

}  // namespace rbdluks
