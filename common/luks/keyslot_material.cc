// Keyslot key material: AF split, encrypted in 512-byte sectors from tweak 0, as cryptsetup stores it.
#include "keyslot_material.h"

#include <algorithm>
#include <string>
#include <vector>

#include "af_splitter.h"
#include "cipher_spec.h"
#include "random.h"

namespace rbdluks {
namespace {

constexpr size_t kAreaSectorSize = 512;
constexpr size_t kWipeChunk = 1 << 20;

std::string where(const RawImage& image, uint64_t offset) {
  return "keyslot area at offset " + std::to_string(offset) + " of " + image.name();
}

// The layout must describe a non-empty split that fits its area; key_bytes is checked against the
// area before multiplying, so a corrupt header cannot overflow encrypted_size().
Status check_fits(const RawImage& image, const KeyMaterialLayout& layout, Errc too_small) {
  if (layout.key_bytes == 0 || layout.stripes == 0) {
    return Error(Errc::bad_header, where(image, layout.offset) + ": key size and stripes must be non-zero");
  }
  if (layout.key_bytes > layout.area_size / layout.stripes || layout.encrypted_size() > layout.area_size) {
    return Error(too_small, where(image, layout.offset) + ": " + std::to_string(layout.key_bytes) + "-byte key in " +
                                std::to_string(layout.stripes) + " stripes needs more than the area's " +
                                std::to_string(layout.area_size) + " bytes");
  }
  return {};
}

}  // namespace

Result<SecureBuffer> read_key_material(RawImage& image, const KeyMaterialLayout& layout,
                                       std::span<const uint8_t> derived_key) {
  RL_TRY(check_fits(image, layout, Errc::bad_header));
  RL_ASSIGN(auto cipher, make_cipher(layout.cipher, derived_key));
  SecureBuffer material(layout.encrypted_size());
  if (Status st = image.read(layout.offset, material.span()); !st) {
    return std::move(st).error().context("reading " + where(image, layout.offset));
  }
  cipher->decrypt(material.span(), kAreaSectorSize, 0);
  SecureBuffer key(layout.key_bytes);
  RL_TRY(af_merge(material.span().first(af_split_size(layout.key_bytes, layout.stripes)), layout.stripes,
                  layout.af_hash, key.span()));
  return key;
}

Status write_key_material(RawImage& image, const KeyMaterialLayout& layout, std::span<const uint8_t> derived_key,
                          std::span<const uint8_t> volume_key) {
  if (volume_key.size() != layout.key_bytes) {
    return Error(Errc::failure, where(image, layout.offset) + ": volume key has " + std::to_string(volume_key.size()) +
                                    " bytes, layout says " + std::to_string(layout.key_bytes));
  }
  RL_TRY(check_fits(image, layout, Errc::no_space));
  RL_ASSIGN(auto cipher, make_cipher(layout.cipher, derived_key));
  SecureBuffer material(layout.encrypted_size());
  const size_t split_size = af_split_size(layout.key_bytes, layout.stripes);
  RL_TRY(af_split(volume_key, layout.stripes, layout.af_hash, material.span().first(split_size)));
  RL_TRY(fill_random(material.span().subspan(split_size)));  // padding to the sector; readers ignore it
  cipher->encrypt(material.span(), kAreaSectorSize, 0);
  if (Status st = image.write(layout.offset, material.span()); !st) {
    return std::move(st).error().context("writing " + where(image, layout.offset));
  }
  return {};
}

Status wipe_key_material(RawImage& image, uint64_t offset, uint64_t area_size) {
  std::vector<uint8_t> noise(static_cast<size_t>(std::min<uint64_t>(area_size, kWipeChunk)));
  for (uint64_t done = 0; done < area_size;) {
    const std::span<uint8_t> chunk(noise.data(), static_cast<size_t>(std::min<uint64_t>(area_size - done, kWipeChunk)));
    RL_TRY(fill_random(chunk));
    if (Status st = image.write(offset + done, chunk); !st) {
      return std::move(st).error().context("wiping " + where(image, offset));
    }
    done += chunk.size();
  }
  return {};
}

}  // namespace rbdluks
