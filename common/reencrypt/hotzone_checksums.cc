// Hotzone checksums: one hash per block, written before the step's header and compared after a crash.
#include "hotzone_checksums.h"

#include <algorithm>
#include <cstring>

#include "hash.h"

namespace rbdluks {
namespace {

constexpr size_t kHeadBytes = 64;

// The hash function the area's "hash" names: the head hash is sha256 over fewer bytes.
std::string_view underlying_hash(const std::string& name) {
  if (name == kHeadChecksumHash) return "sha256";
  return name;
}

Result<size_t> checksum_digest_size(const Luks2ReencryptKeyslot& area) { return hash_size(underlying_hash(area.hash)); }

}  // namespace

Status check_checksum_hash(const std::string& name) {
  if (auto size = hash_size(underlying_hash(name)); !size) {
    return Error(Errc::usage, "checksum " + size.error().message() + "; or " + kHeadChecksumHash);
  }
  return {};
}

Result<uint64_t> checksum_capacity(const Luks2ReencryptKeyslot& area) {
  RL_ASSIGN(const size_t digest_size, checksum_digest_size(area));
  return area.area_size / digest_size * area.sector_size;
}

Result<size_t> checksums_size(const Luks2ReencryptKeyslot& area, uint64_t hotzone_bytes) {
  RL_ASSIGN(const size_t digest_size, checksum_digest_size(area));
  if (hotzone_bytes % area.sector_size != 0 || hotzone_bytes / area.sector_size * digest_size > area.area_size) {
    return Error(Errc::failure, "a hotzone of " + std::to_string(hotzone_bytes) +
                                    " bytes does not fit the reencryption checksum area");
  }
  return static_cast<size_t>(hotzone_bytes / area.sector_size * digest_size);
}

Status hash_blocks(const Luks2ReencryptKeyslot& area, std::span<const uint8_t> part, std::span<uint8_t> out) {
  RL_ASSIGN(const size_t digest_size, checksum_digest_size(area));
  const std::string_view hash = underlying_hash(area.hash);
  // Blocks are whole sectors, at least 512 bytes: the head lies within the first one.
  const size_t hashed = area.hash == kHeadChecksumHash ? kHeadBytes : area.sector_size;
  for (size_t i = 0; i < part.size() / area.sector_size; ++i) {
    const std::span<const uint8_t> block = part.subspan(i * area.sector_size, hashed);
    RL_TRY(hash_parts(hash, std::span(&block, 1), out.subspan(i * digest_size, digest_size)));
  }
  return {};
}

Status store_hotzone_checksums(RawImage& image, const Luks2ReencryptKeyslot& area, std::span<const uint8_t> hashes) {
  return image.write(area.area_offset, hashes);
}

Result<std::vector<bool>> blocks_still_old(RawImage& image, const Luks2ReencryptKeyslot& area,
                                           std::span<const uint8_t> now) {
  RL_ASSIGN(const size_t digest_size, checksum_digest_size(area));
  std::vector<uint8_t> stored(now.size());
  RL_TRY(image.read(area.area_offset, stored));
  std::vector<bool> old(now.size() / digest_size);
  for (size_t i = 0; i < old.size(); ++i) {
    old[i] = std::memcmp(now.data() + i * digest_size, stored.data() + i * digest_size, digest_size) == 0;
  }
  return old;
}

}  // namespace rbdluks
