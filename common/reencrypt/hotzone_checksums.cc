// Hotzone checksums: one hash per block, written before the step's header and compared after a crash.
#include "hotzone_checksums.h"

#include <algorithm>
#include <cstring>

#include "hash.h"

namespace rbdluks {
Result<uint64_t> checksum_capacity(const Luks2ReencryptKeyslot& area) {
  RL_ASSIGN(const size_t digest_size, hash_size(area.hash));
  return area.area_size / digest_size * area.sector_size;
}

Result<size_t> checksums_size(const Luks2ReencryptKeyslot& area, uint64_t hotzone_bytes) {
  RL_ASSIGN(const size_t digest_size, hash_size(area.hash));
  if (hotzone_bytes % area.sector_size != 0 || hotzone_bytes / area.sector_size * digest_size > area.area_size) {
    return Error(Errc::failure, "a hotzone of " + std::to_string(hotzone_bytes) +
                                    " bytes does not fit the reencryption checksum area");
  }
  return static_cast<size_t>(hotzone_bytes / area.sector_size * digest_size);
}

Status hash_blocks(const Luks2ReencryptKeyslot& area, std::span<const uint8_t> part, std::span<uint8_t> out) {
  RL_ASSIGN(const size_t digest_size, hash_size(area.hash));
  for (size_t i = 0; i < part.size() / area.sector_size; ++i) {
    const std::span<const uint8_t> block = part.subspan(i * area.sector_size, area.sector_size);
    RL_TRY(hash_parts(area.hash, std::span(&block, 1), out.subspan(i * digest_size, digest_size)));
  }
  return {};
}

Status store_hotzone_checksums(RawImage& image, const Luks2ReencryptKeyslot& area, std::span<const uint8_t> hashes) {
  return image.write(area.area_offset, hashes);
}

Result<std::vector<bool>> blocks_still_old(RawImage& image, const Luks2ReencryptKeyslot& area,
                                           std::span<const uint8_t> now) {
  RL_ASSIGN(const size_t digest_size, hash_size(area.hash));
  std::vector<uint8_t> stored(now.size());
  RL_TRY(image.read(area.area_offset, stored));
  std::vector<bool> old(now.size() / digest_size);
  for (size_t i = 0; i < old.size(); ++i) {
    old[i] = std::memcmp(now.data() + i * digest_size, stored.data() + i * digest_size, digest_size) == 0;
  }
  return old;
}

}  // namespace rbdluks
