// The digest that binds a LUKS2 reencryption's state to its keys (cryptsetup's
// luks2_reencrypt_digest.c, format version 2, requirement "online-reencrypt-v2").
//
// A reencryption's progress lives in metadata anyone with write access could edit. So the reencrypt
// keyslot is assigned a "pbkdf2" digest of: "v" and the version digit, the old volume key, the new
// volume key, the reencrypt keyslot's mode, direction and resilience area, and the backup segments
// (previous, final, and the moved segment of a data shift). Who resumes checks it before touching
// data; one who holds no key cannot forge a state that would make a resume rewrite sectors wrongly.
#pragma once

#include <cstdint>
#include <span>

#include "luks2_metadata.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

// The version that the "online-reencrypt-v<N>" requirement names; this code writes and reads 2.
inline constexpr uint8_t kLuks2ReencryptVersion = 2;

// The bytes the digest covers. old_key is empty when the old data is plaintext (encryption), and
// new_key when the new is (decryption) or when both keys are the same. Errc::bad_header when the
// metadata lacks a reencrypt keyslot or a backup segment.
Result<SecureBuffer> luks2_reencrypt_verification_data(const Luks2Metadata& metadata, std::span<const uint8_t> old_key,
                                                       std::span<const uint8_t> new_key, uint8_t version);

// Makes a new digest of the verification data and assigns the reencrypt keyslot to it alone (a
// digest it had before and that nothing else uses is removed).
Status assign_luks2_reencrypt_digest(Luks2Metadata& metadata, std::span<const uint8_t> old_key,
                                     std::span<const uint8_t> new_key, bool minimal_cost);

// Whether the reencrypt keyslot's digest matches the state and the keys.
bool luks2_reencrypt_digest_matches(const Luks2Metadata& metadata, std::span<const uint8_t> old_key,
                                    std::span<const uint8_t> new_key);

}  // namespace rbdluks
