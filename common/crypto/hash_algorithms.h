// Internal to hash.cc and kdf.cc: the one list of hash functions rbd-luks knows by their LUKS names.
// Crypto++'s hashes and its PBKDF2 are templates over the hash type, so each name carries the
// instances both need, and a hash added here is at once usable for digests and for PBKDF2.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "result.h"

namespace rbdluks {

struct HashAlgorithm {
  std::string_view name;
  size_t digest_size;
  // Digest of the concatenation of parts; out has digest_size bytes. May throw CryptoPP::Exception.
  void (*digest)(std::span<const std::span<const uint8_t>> parts, std::span<uint8_t> out);
  // PBKDF2-HMAC filling all of out (not empty). May throw CryptoPP::Exception.
  void (*pbkdf2)(std::span<const uint8_t> passphrase, std::span<const uint8_t> salt, uint32_t iterations,
                 std::span<uint8_t> out);
};

// The algorithm called name, or Errc::unsupported naming the ones there are.
Result<const HashAlgorithm*> find_hash_algorithm(std::string_view name);

}  // namespace rbdluks
