// Hash functions by their LUKS names ("sha1", "sha256", "sha512", ...), as used by the LUKS2
// header checksum, the AF splitter's diffusion and PBKDF2.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "result.h"

namespace rbdluks {

// Digest size in bytes, or Errc::unsupported for an unknown name.
Result<size_t> hash_size(std::string_view name);

// Digest of the concatenation of parts; out.size() must equal hash_size(name).
Status hash_parts(std::string_view name, std::span<const std::span<const uint8_t>> parts, std::span<uint8_t> out);

}  // namespace rbdluks
