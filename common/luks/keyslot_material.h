// The encrypted, AF-split copy of the volume key that a keyslot holds, shared by LUKS1 and LUKS2.
//
// Layout, as cryptsetup writes it: af_split(volume_key, stripes, af_hash) encrypted with the
// keyslot's cipher under the passphrase-derived key, in 512-byte sectors whose tweak starts at 0 at
// the area's first byte, padded with random bytes (LUKS2) up to the next 512-byte boundary.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "raw_image.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

struct KeyMaterialLayout {
  uint64_t offset = 0;     // byte offset of the area in the image
  uint64_t area_size = 0;  // bytes reserved for the area (>= encrypted_size)
  size_t key_bytes = 0;    // volume key size
  uint32_t stripes = 4000;
  std::string af_hash = "sha256";
  std::string cipher = "aes-xts-plain64";  // cryptsetup spelling, e.g. LUKS2 area.encryption

  // AF-split size rounded up to whole 512-byte sectors: what is read and written.
  uint64_t encrypted_size() const { return (key_bytes * stripes + 511) / 512 * 512; }
};

// Decrypts and merges the area with derived_key (the KDF output, layout's cipher key size); the
// result is a candidate volume key that the caller must check against the header's digest.
Result<SecureBuffer> read_key_material(RawImage& image, const KeyMaterialLayout& layout,
                                       std::span<const uint8_t> derived_key);

// Splits, encrypts and writes volume_key into the area. Fails without writing when the area is too
// small.
Status write_key_material(RawImage& image, const KeyMaterialLayout& layout, std::span<const uint8_t> derived_key,
                          std::span<const uint8_t> volume_key);

// Overwrites the whole area (area_size bytes) with random data, as cryptsetup's keyslot wipe does.
Status wipe_key_material(RawImage& image, uint64_t offset, uint64_t area_size);

}  // namespace rbdluks
