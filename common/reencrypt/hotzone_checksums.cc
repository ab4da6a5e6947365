// Hotzone checksums: one hash per block, written before the step's header and compared after a crash.
#include "hotzone_checksums.h"

#include <algorithm>
#include <cstring>

#include "hash.h"

namespace rbdluks {
namespace {

Result<std::vector<uint8_t>> hash_blocks(const Luks2ReencryptKeyslot& area, std::span<const uint8_t> hotzone) {
  RL_ASSIGN(const size_t digest_size, hash_size(area.hash));
  const size_t blocks = hotzone.size() / area.sector_size;
  if (hotzone.size() % area.sector_size != 0 || blocks * digest_size > area.area_size) {
    return Error(Errc::failure, "a hotzone of " + std::to_string(hotzone.size()) +
                                    " bytes does not fit the reencryption checksum area");
  }
  std::vector<uint8_t> hashes(blocks * digest_size);
  for (size_t i = 0; i < blocks; ++i) {
    const std::span<const uint8_t> block = hotzone.subspan(i * area.sector_size, area.sector_size);
    RL_TRY(hash_parts(area.hash, std::span(&block, 1), std::span(hashes).subspan(i * digest_size, digest_size)));
  }
  return hashes;
}

}  // namespace

Result<uint64_t> checksum_capacity(const Luks2ReencryptKeyslot& area) {
  RL_ASSIGN(const size_t digest_size, hash_size(area.hash));
  return area.area_size / digest_size * area.sector_size;
}

Status store_hotzone_checksums(RawImage& image, const Luks2ReencryptKeyslot& area, std::span<const uint8_t> hotzone) {
  RL_ASSIGN(const std::vector<uint8_t> hashes, hash_blocks(area, hotzone));
  return image.write(area.area_offset, hashes);
}

Result<std::vector<bool>> blocks_still_old(RawImage& image, const Luks2ReencryptKeyslot& area,
                                           std::span<const uint8_t> hotzone) {
  RL_ASSIGN(const std::vector<uint8_t> now, hash_blocks(area, hotzone));
  std::vector<uint8_t> stored(now.size());
  RL_TRY(image.read(area.area_offset, stored));
  RL_ASSIGN(const size_t digest_size, hash_size(area.hash));
  std::vector<bool> old(now.size() / digest_size);
  for (size_t i = 0; i < old.size(); ++i) {
    old[i] = std::memcmp(now.data() + i * digest_size, stored.data() + i * digest_size, digest_size) == 0;
  }
  return old;
}

}  // namespace rbdluks
