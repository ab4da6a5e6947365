// A LUKS2 keyslot of type "luks2" and the digest that recognises its key: opened with a
// passphrase, written for a key, and looked up through the digests that bind keyslots to segments.
//
// Below Luks2Volume, which opens and changes the keyslots of a volume with one data segment; the
// reencryption (common/reencrypt) uses these directly, since its header holds the keyslots of two
// volume keys at once, each bound to its own digest.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kdf.h"
#include "luks2_header.h"
#include "raw_image.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

// The digest that keyslot is assigned to, if any.
std::optional<int> luks2_keyslot_digest(const Luks2Metadata& metadata, int keyslot);

// The digest assigned to segment, if any (a reencryption's hotzone has two: the lowest is returned).
std::optional<int> luks2_segment_digest(const Luks2Metadata& metadata, int segment);

// Derives the keyslot's key from passphrase, decrypts its material and checks the result against
// the keyslot's digest: the key it holds, or Errc::bad_key.
Result<SecureBuffer> open_luks2_keyslot(RawImage& image, const Luks2Metadata& metadata, int keyslot,
                                        std::span<const uint8_t> passphrase);

// The same, with a passphrase that opens nothing as an empty result rather than an error: for callers
// that try several passphrases on several keyslots.
Result<std::optional<SecureBuffer>> try_open_luks2_keyslot(RawImage& image, const Luks2Metadata& metadata, int keyslot,
                                                           std::span<const uint8_t> passphrase);

// Writes the material of a new keyslot `id` holding key under passphrase, with exactly the KDF cost
// kdf (random salt), in a free part of the keyslots area, flushes it, and adds the keyslot to
// header.metadata, assigned to no digest yet. Nothing that a header lists is overwritten. The area's
// cipher key is as long as key, unless area_key_bytes says otherwise.
Status add_luks2_keyslot(Luks2Header& header, RawImage& image, int id, std::span<const uint8_t> key,
                         std::span<const uint8_t> passphrase, const KdfParams& kdf, const std::string& area_cipher,
                         std::optional<uint32_t> area_key_bytes = std::nullopt);

// A "pbkdf2" digest (sha256, random salt) that recognises key, assigned to nothing yet. Its cost is
// cryptsetup's: about 125 ms of PBKDF2, at least 1000 iterations; exactly 1000 with minimal_cost
// (what --pbkdf-force-iterations asks for, to keep tests fast).
Result<Luks2Digest> new_luks2_digest(std::span<const uint8_t> key, bool minimal_cost);

// The lowest digest id not in use; Errc::no_space when all 8 are.
Result<int> luks2_free_digest_id(const Luks2Metadata& metadata);

// Tokens (systemd-cryptenroll's, ...) name the keyslots they unlock: `added` joins every token that
// names `existing`, and a removed keyslot leaves every token (a dangling name is invalid).
void luks2_tokens_add_keyslot(Luks2Metadata& metadata, int existing, int added);
void luks2_tokens_drop_keyslot(Luks2Metadata& metadata, int keyslot);

// "keyslot 3" or "keyslots 1, 3", for messages.
std::string keyslot_list(const std::vector<int>& ids);

// The lowest keyslot id that neither kind of keyslot uses; Errc::no_space when all 32 are.
Result<int> luks2_free_keyslot_id(const Luks2Metadata& metadata);

}  // namespace rbdluks
