// The LUKS1 partition header (cryptsetup's struct luks_phdr), big-endian:
//
//   0 magic[6]  6 version(u16)  8 cipherName[32]  40 cipherMode[32]  72 hashSpec[32]
//   104 payloadOffset(u32, sectors)  108 keyBytes(u32)  112 mkDigest[20]  132 mkDigestSalt[32]
//   164 mkDigestIterations(u32)  168 uuid[40]
//   208 + 48 * i: keyslot i { active(u32)  passwordIterations(u32)  passwordSalt[32]
//                             keyMaterialOffset(u32, sectors)  stripes(u32) }
//   592 padding to 1024
//
// Parsing applies the checks of cryptsetup's _check_and_convert_hdr, LUKS_check_keyslots and
// LUKS_check_device_size, so a header we accept is one cryptsetup accepts, and nothing in it can make
// us read or write outside the header and keyslot areas.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "result.h"

namespace rbdluks {

inline constexpr size_t kLuks1HeaderSize = 592;     // the fields
inline constexpr size_t kLuks1HeaderIoSize = 1024;  // struct luks_phdr with padding: what cryptsetup reads and writes
inline constexpr size_t kLuks1SectorSize = 512;     // unit of payloadOffset and keyMaterialOffset
inline constexpr size_t kLuks1NumKeyslots = 8;
inline constexpr uint32_t kLuks1Stripes = 4000;
inline constexpr uint32_t kLuks1KeyActive = 0x00AC71F3;
inline constexpr uint32_t kLuks1KeyDisabled = 0x0000DEAD;
inline constexpr size_t kLuks1SaltSize = 32;
inline constexpr size_t kLuks1DigestSize = 20;
inline constexpr size_t kLuks1NameSize = 32;  // cipherName, cipherMode, hashSpec
inline constexpr size_t kLuks1UuidSize = 40;
inline constexpr uint32_t kLuks1MinIterations = 1000;     // cryptsetup's floor for keyslots and the digest
inline constexpr uint64_t kLuks1KeyslotAlignment = 4096;  // keyslot areas start on 4 KiB boundaries

struct Luks1Keyslot {
  uint32_t active = kLuks1KeyDisabled;  // kLuks1KeyActive, kLuks1KeyDisabled, or anything else: invalid
  uint32_t iterations = 0;
  std::array<uint8_t, kLuks1SaltSize> salt{};
  uint32_t key_material_offset = 0;  // sectors
  uint32_t stripes = kLuks1Stripes;

  bool is_active() const { return active == kLuks1KeyActive; }
  bool is_disabled() const { return active == kLuks1KeyDisabled; }
};

struct Luks1Header {
  std::string cipher_name;      // "aes"
  std::string cipher_mode;      // "xts-plain64"
  std::string hash_spec;        // "sha256": PBKDF2, AF diffusion and the digest
  uint32_t payload_offset = 0;  // sectors
  uint32_t key_bytes = 0;
  std::array<uint8_t, kLuks1DigestSize> mk_digest{};
  std::array<uint8_t, kLuks1SaltSize> mk_digest_salt{};
  uint32_t mk_digest_iterations = 0;
  std::string uuid;
  std::array<Luks1Keyslot, kLuks1NumKeyslots> keyslots{};

  std::string cipher_spec() const { return cipher_name + "-" + cipher_mode; }
  // Bytes of one keyslot's AF-split material, in whole sectors (cryptsetup's AF_split_sectors).
  uint64_t key_material_size() const;
  uint64_t payload_offset_bytes() const { return uint64_t{payload_offset} * kLuks1SectorSize; }
};

// Parses and validates the first bytes of an image (at least kLuks1HeaderSize; cryptsetup reads
// kLuks1HeaderIoSize) against the image's size. Errc::bad_header with the reason for anything
// malformed; Errc::unsupported for a detached-header layout (payload offset 0).
Result<Luks1Header> parse_luks1_header(std::span<const uint8_t> bytes, uint64_t image_size);

// Errc::unsupported for a valid header whose hash or cipher rbd-luks does not implement.
Status luks1_supported(const Luks1Header& header);

// The kLuks1HeaderIoSize on-disk bytes (padding zeroed, as cryptsetup writes them). Errc::failure
// when a string does not fit its field.
Result<std::array<uint8_t, kLuks1HeaderIoSize>> serialize_luks1_header(const Luks1Header& header);

// Places the eight keyslot areas for header.key_bytes as cryptsetup's LUKS_generate_phdr does: the
// first at 4 KiB, each one key_material_size() long and rounded up to 4 KiB. Returns the end of the
// keyslot areas in sectors, the smallest payload offset cryptsetup allows.
uint64_t place_luks1_keyslots(Luks1Header& header);

}  // namespace rbdluks
