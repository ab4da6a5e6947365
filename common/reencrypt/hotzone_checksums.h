// The "checksum" resilience of a reencryption step: before a hotzone is rewritten, the hash of each
// of its blocks as it is on disk (old ciphertext) goes to the reencrypt keyslot's area. After a
// crash in the middle of the step, a block whose hash still matches holds old ciphertext and one
// whose hash differs was already rewritten: block writes are atomic (a RADOS object write is; on
// files cryptsetup makes the same assumption of filesystem blocks), so there is no third state.
//
// Layout as cryptsetup 2.6 (reencrypt_hotzone_protect_final): the hash of the hotzone's block i at
// area offset + i * hash size; blocks of the area's sector_size bytes; the area's "hash" algorithm.
//
// The "hash" is cryptsetup's (sha256 by default, of the whole block), or kHeadChecksumHash: sha256
// of the block's first 64 bytes. That rests on the new volume key: reencrypt_luks2 always draws a
// fresh random one, so a block's old and new ciphertext differ in every 16-byte AES block, the head
// included (under the same key, a sector size change would keep the first sector's ciphertext).
// It hashes 2 sha256 blocks instead of 65, where whole-block hashing was the largest CPU cost of a
// run. cryptsetup does not know the name and refuses to resume or repair such a run; files keep
// sha256 so that it can (docs/design.md, "The checksum hash").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "luks2_metadata.h"
#include "raw_image.h"
#include "result.h"

namespace rbdluks {

inline constexpr const char* kHeadChecksumHash = "rbd-luks-sha256-head64";

// Whether name is a checksum hash this build can compute; Errc::usage names the known ones.
Status check_checksum_hash(const std::string& name);

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
