// PBKDF2 volume key digests.
#include "volume_key_digest.h"

#include "kdf.h"

namespace rbdluks {

Result<std::vector<uint8_t>> pbkdf2_digest(std::string_view hash, uint32_t iterations, std::span<const uint8_t> salt,
                                           std::span<const uint8_t> volume_key, size_t digest_size) {
  const KdfParams params{KdfType::pbkdf2, std::string(hash), iterations, 0, 0};
  std::vector<uint8_t> digest(digest_size);
  RL_TRY(derive_key(params, volume_key, salt, digest));
  return digest;
}

bool pbkdf2_digest_matches(std::string_view hash, uint32_t iterations, std::span<const uint8_t> salt,
                           std::span<const uint8_t> volume_key, std::span<const uint8_t> expected) {
  if (expected.empty()) return false;
  auto digest = pbkdf2_digest(hash, iterations, salt, volume_key, expected.size());
  if (!digest) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < expected.size(); ++i) diff |= (*digest)[i] ^ expected[i];
  return diff == 0;
}

}  // namespace rbdluks
