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

// The hashes of the blocks of hotzone (a whole number of blocks), stored at the area's start.
Status store_hotzone_checksums(RawImage& image, const Luks2ReencryptKeyslot& area, std::span<const uint8_t> hotzone);

// For each block of hotzone, whether it still matches the stored hash (its old contents).
Result<std::vector<bool>> blocks_still_old(RawImage& image, const Luks2ReencryptKeyslot& area,
                                           std::span<const uint8_t> hotzone);

}  // namespace rbdluks
