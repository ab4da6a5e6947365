// The 4096-byte binary part of one LUKS2 header copy, as cryptsetup lays it out (big-endian):
//
//   0 magic[6]  6 version(u16)  8 hdr_size(u64)  16 seqid(u64)  24 label[48]  72 checksum_alg[32]
//   104 salt[64]  168 uuid[40]  208 subsystem[48]  256 hdr_offset(u64)  264 padding[184]  448 csum[64]
//   512 padding[3584]
//
// The JSON area (hdr_size - 4096 bytes) follows it; the checksum covers both.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "result.h"

namespace rbdluks {

inline constexpr size_t kLuks2BinaryHeaderSize = 4096;
inline constexpr uint64_t kLuks2MinHdrSize = 0x4000;    // 16 KiB, also the first secondary offset probed
inline constexpr uint64_t kLuks2MaxHdrSize = 0x400000;  // 4 MiB, also the last secondary offset probed
inline constexpr size_t kLuks2LabelSize = 48;
inline constexpr size_t kLuks2ChecksumAlgSize = 32;
inline constexpr size_t kLuks2SaltSize = 64;
inline constexpr size_t kLuks2UuidSize = 40;
inline constexpr size_t kLuks2ChecksumSize = 64;

// True for the header sizes cryptsetup accepts: powers of two from 16 KiB to 4 MiB.
bool luks2_hdr_size_valid(uint64_t hdr_size);

enum class Luks2Magic { none, primary, secondary };

// Which LUKS2 magic, if any, bytes start with (LUKS1 shares the primary magic; the version tells).
Luks2Magic luks2_magic(std::span<const uint8_t> bytes);

struct Luks2BinaryHeader {
  bool secondary = false;  // magic "SKUL\xba\xbe" instead of "LUKS\xba\xbe"
  uint16_t version = 2;
  uint64_t hdr_size = kLuks2MinHdrSize;
  uint64_t seqid = 0;
  std::string label;                    // at most 47 bytes
  std::string checksum_alg = "sha256";  // at most 31 bytes
  std::array<uint8_t, kLuks2SaltSize> salt{};
  std::string uuid;         // at most 39 bytes
  std::string subsystem;    // at most 47 bytes
  uint64_t hdr_offset = 0;  // where this copy lives: 0, or hdr_size for the secondary
  std::array<uint8_t, kLuks2ChecksumSize> csum{};
};

// Parses the binary header of the copy found at image offset `offset` and checks what can be checked
// before the checksum: magic (primary at 0, secondary elsewhere), version 2, hdr_offset == offset,
// hdr_size valid, a secondary sitting at hdr_size, NUL-terminated strings. Errc::bad_header otherwise.
Result<Luks2BinaryHeader> parse_luks2_binary_header(std::span<const uint8_t> bytes, uint64_t offset);

// The on-disk bytes of header; Errc::failure when a string does not fit its field.
Result<std::array<uint8_t, kLuks2BinaryHeaderSize>> serialize_luks2_binary_header(const Luks2BinaryHeader& header);

// The checksum of one copy: `alg` over the binary bytes with the csum field zeroed, then the whole JSON
// area; zero-padded to 64 bytes. Errc::unsupported for a hash we do not know.
Result<std::array<uint8_t, kLuks2ChecksumSize>> luks2_checksum(std::string_view alg, std::span<const uint8_t> binary,
                                                               std::span<const uint8_t> json_area);

// Checks the stored csum of a copy (binary as read, so padding and bytes after string terminators
// count as they are on disk). Errc::bad_header on a mismatch.
Status verify_luks2_checksum(const Luks2BinaryHeader& header, std::span<const uint8_t> binary,
                             std::span<const uint8_t> json_area);

}  // namespace rbdluks
