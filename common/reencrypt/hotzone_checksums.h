// The "checksum" resilience of a reencryption step: before a hotzone is rewritten, the hash of each
// of its blocks as it is on disk (old ciphertext) goes to the reencrypt keyslot's area. After a
// crash in the middle of the step, a block whose hash still matches holds old ciphertext and one
// whose hash differs was already rewritten: block writes are atomic (a RADOS object write is; on
// files cryptsetup makes the same assumption of filesystem blocks), so there is no third state.
//
// Layout as cryptsetup 2.6 (reencrypt_hotzone_protect_final): the hash of the hotzone's block i at
// area offset + i * hash size; blocks of the area's sector_size bytes; the area's "hash" algorithm.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "luks2_metadata.h"
#include "raw_image.h"
#include "result.h"

namespace rbdluks {

// How many bytes of hotzone the area can protect.
Result<uint64_t> checksum_capacity(const Luks2ReencryptKeyslot& area);

// The hashes of the blocks of part (a whole number of blocks) into out (hash size bytes per block);
// parts of one hotzone may be hashed on several threads into their places of one buffer.
Status hash_blocks(const Luks2ReencryptKeyslot& area, std::span<const uint8_t> part, std::span<uint8_t> out);

// Bytes of hashes for a hotzone of hotzone_bytes.
Result<size_t> checksums_size(const Luks2ReencryptKeyslot& area, uint64_t hotzone_bytes);

// Stores the hashes of a hotzone's blocks at the area's start.
Status store_hotzone_checksums(RawImage& image, const Luks2ReencryptKeyslot& area, std::span<const uint8_t> hashes);

// For each block of a hotzone whose blocks hash to `now`, whether it still matches the stored hash
// (holds its old contents).
Result<std::vector<bool>> blocks_still_old(RawImage& image, const Luks2ReencryptKeyslot& area,
                                           std::span<const uint8_t> now);

}  // namespace rbdluks
