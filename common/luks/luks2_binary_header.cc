// LUKS2 binary header: field-by-field big-endian encoding with explicit offsets, so the layout does
// not depend on struct packing, and every string is bounded by its field.
#include "luks2_binary_header.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "byte_fields.h"
#include "hash.h"

namespace rbdluks {
namespace {

constexpr std::string_view kMagicPrimary{"LUKS\xba\xbe", 6};
constexpr std::string_view kMagicSecondary{"SKUL\xba\xbe", 6};

constexpr size_t kOffMagic = 0;
constexpr size_t kOffVersion = 6;
constexpr size_t kOffHdrSize = 8;
constexpr size_t kOffSeqid = 16;
constexpr size_t kOffLabel = 24;
constexpr size_t kOffChecksumAlg = 72;
constexpr size_t kOffSalt = 104;
constexpr size_t kOffUuid = 168;
constexpr size_t kOffSubsystem = 208;
constexpr size_t kOffHdrOffset = 256;
constexpr size_t kOffCsum = 448;

}  // namespace

bool luks2_hdr_size_valid(uint64_t hdr_size) {
  return hdr_size >= kLuks2MinHdrSize && hdr_size <= kLuks2MaxHdrSize && (hdr_size & (hdr_size - 1)) == 0;
}

Luks2Magic luks2_magic(std::span<const uint8_t> bytes) {
  if (bytes.size() < kMagicPrimary.size()) return Luks2Magic::none;
  const std::string_view magic(reinterpret_cast<const char*>(bytes.data() + kOffMagic), kMagicPrimary.size());
  if (magic == kMagicPrimary) return Luks2Magic::primary;
  if (magic == kMagicSecondary) return Luks2Magic::secondary;
  return Luks2Magic::none;
}

Result<Luks2BinaryHeader> parse_luks2_binary_header(std::span<const uint8_t> bytes, uint64_t offset) {
  if (bytes.size() < kLuks2BinaryHeaderSize) {
    return Error(Errc::bad_header, "binary header needs " + std::to_string(kLuks2BinaryHeaderSize) + " bytes, got " +
                                       std::to_string(bytes.size()));
  }
  Luks2BinaryHeader h;
  const bool want_secondary = offset != 0;
  if (luks2_magic(bytes) != (want_secondary ? Luks2Magic::secondary : Luks2Magic::primary)) {
    return Error(Errc::bad_header, std::string("no LUKS2 ") + (want_secondary ? "secondary" : "primary") +
                                       " magic at offset " + std::to_string(offset));
  }
  h.secondary = want_secondary;
  h.version = static_cast<uint16_t>(load_be(bytes, kOffVersion, 2));
  if (h.version != 2) {
    return Error(Errc::bad_header, "header version is " + std::to_string(h.version) + ", not 2");
  }
  h.hdr_size = load_be(bytes, kOffHdrSize, 8);
  h.seqid = load_be(bytes, kOffSeqid, 8);
  h.hdr_offset = load_be(bytes, kOffHdrOffset, 8);
  if (h.hdr_offset != offset) {
    return Error(Errc::bad_header,
                 "hdr_offset is " + std::to_string(h.hdr_offset) + " in the copy at offset " + std::to_string(offset));
  }
  if (!luks2_hdr_size_valid(h.hdr_size)) {
    return Error(Errc::bad_header,
                 "hdr_size " + std::to_string(h.hdr_size) + " is not a power of two from 16 KiB to 4 MiB");
  }
  if (h.secondary && h.hdr_size != offset) {
    return Error(Errc::bad_header,
                 "secondary copy at offset " + std::to_string(offset) + " has hdr_size " + std::to_string(h.hdr_size));
  }
  RL_ASSIGN(h.label, load_string_field(bytes, kOffLabel, kLuks2LabelSize, "label"));
  RL_ASSIGN(h.checksum_alg, load_string_field(bytes, kOffChecksumAlg, kLuks2ChecksumAlgSize, "checksum_alg"));
  RL_ASSIGN(h.uuid, load_string_field(bytes, kOffUuid, kLuks2UuidSize, "uuid"));
  RL_ASSIGN(h.subsystem, load_string_field(bytes, kOffSubsystem, kLuks2LabelSize, "subsystem"));
  std::copy_n(bytes.begin() + kOffSalt, kLuks2SaltSize, h.salt.begin());
  std::copy_n(bytes.begin() + kOffCsum, kLuks2ChecksumSize, h.csum.begin());
  return h;
}

Result<std::array<uint8_t, kLuks2BinaryHeaderSize>> serialize_luks2_binary_header(const Luks2BinaryHeader& h) {
  std::array<uint8_t, kLuks2BinaryHeaderSize> out{};
  const std::string_view magic = h.secondary ? kMagicSecondary : kMagicPrimary;
  std::memcpy(out.data() + kOffMagic, magic.data(), magic.size());
  store_be(out, kOffVersion, 2, h.version);
  store_be(out, kOffHdrSize, 8, h.hdr_size);
  store_be(out, kOffSeqid, 8, h.seqid);
  RL_TRY(store_string_field(out, kOffLabel, kLuks2LabelSize, h.label, "label"));
  RL_TRY(store_string_field(out, kOffChecksumAlg, kLuks2ChecksumAlgSize, h.checksum_alg, "checksum_alg"));
  RL_TRY(store_string_field(out, kOffUuid, kLuks2UuidSize, h.uuid, "uuid"));
  RL_TRY(store_string_field(out, kOffSubsystem, kLuks2LabelSize, h.subsystem, "subsystem"));
  std::copy(h.salt.begin(), h.salt.end(), out.begin() + kOffSalt);
  store_be(out, kOffHdrOffset, 8, h.hdr_offset);
  std::copy(h.csum.begin(), h.csum.end(), out.begin() + kOffCsum);
  return out;
}

Result<std::array<uint8_t, kLuks2ChecksumSize>> luks2_checksum(std::string_view alg, std::span<const uint8_t> binary,
                                                               std::span<const uint8_t> json_area) {
  if (binary.size() != kLuks2BinaryHeaderSize) {
    return Error(Errc::failure, "LUKS2 checksum needs the " + std::to_string(kLuks2BinaryHeaderSize) +
                                    "-byte binary header, got " + std::to_string(binary.size()));
  }
  auto size = hash_size(alg);
  if (!size) {
    return Error(Errc::unsupported, "header checksum algorithm '" + std::string(alg) + "' is not supported");
  }
  if (*size > kLuks2ChecksumSize) {
    return Error(Errc::unsupported, "header checksum algorithm '" + std::string(alg) + "' is longer than 64 bytes");
  }
  std::vector<uint8_t> zeroed(binary.begin(), binary.end());
  std::fill_n(zeroed.begin() + kOffCsum, kLuks2ChecksumSize, uint8_t{0});
  const std::span<const uint8_t> parts[] = {zeroed, json_area};
  std::array<uint8_t, kLuks2ChecksumSize> out{};
  RL_TRY(hash_parts(alg, parts, std::span<uint8_t>(out.data(), *size)));
  return out;
}

Status verify_luks2_checksum(const Luks2BinaryHeader& header, std::span<const uint8_t> binary,
                             std::span<const uint8_t> json_area) {
  RL_ASSIGN(const auto expected, luks2_checksum(header.checksum_alg, binary, json_area));
  RL_ASSIGN(const size_t size, hash_size(header.checksum_alg));
  if (!std::equal(expected.begin(), expected.begin() + static_cast<std::ptrdiff_t>(size), header.csum.begin())) {
    return Error(Errc::bad_header, header.checksum_alg + " checksum mismatch");
  }
  return {};
}

}  // namespace rbdluks
