// The PBKDF2 digest LUKS stores to recognise the volume key: LUKS1's mkDigest (20 bytes) and the
// LUKS2 "pbkdf2" digest (hash-sized). A candidate key is right when PBKDF2 of it gives the same bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "result.h"

namespace rbdluks {

Result<std::vector<uint8_t>> pbkdf2_digest(std::string_view hash, uint32_t iterations, std::span<const uint8_t> salt,
                                           std::span<const uint8_t> volume_key, size_t digest_size);

// Constant-time comparison of the recomputed digest with `expected`; false on any KDF error.
bool pbkdf2_digest_matches(std::string_view hash, uint32_t iterations, std::span<const uint8_t> salt,
                           std::span<const uint8_t> volume_key, std::span<const uint8_t> expected);

}  // namespace rbdluks
