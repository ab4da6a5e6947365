// LUKS1 header: field-by-field big-endian encoding with explicit offsets (no struct packing), and the
// consistency checks cryptsetup runs before it trusts any offset in the header.
#include "luks1_header.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string_view>

#include "alignment.h"
#include "byte_fields.h"
#include "cipher_spec.h"
#include "hash.h"
#include "kdf_cost_limits.h"

namespace rbdluks {
namespace {

constexpr std::string_view kMagic{"LUKS\xba\xbe", 6};

constexpr size_t kOffVersion = 6;
constexpr size_t kOffCipherName = 8;
constexpr size_t kOffCipherMode = 40;
constexpr size_t kOffHashSpec = 72;
constexpr size_t kOffPayloadOffset = 104;
constexpr size_t kOffKeyBytes = 108;
constexpr size_t kOffMkDigest = 112;
constexpr size_t kOffMkDigestSalt = 132;
constexpr size_t kOffMkDigestIterations = 164;
constexpr size_t kOffUuid = 168;
constexpr size_t kOffKeyslots = 208;
constexpr size_t kKeyslotSize = 48;
constexpr size_t kSlotOffActive = 0;
constexpr size_t kSlotOffIterations = 4;
constexpr size_t kSlotOffSalt = 8;
constexpr size_t kSlotOffMaterial = 40;
constexpr size_t kSlotOffStripes = 44;

// No cipher cryptsetup knows takes more; anything larger is a corrupt field, not a big key.
constexpr uint32_t kMaxKeyBytes = 512;

template <size_t N>
void load_bytes(std::span<const uint8_t> bytes, size_t offset, std::array<uint8_t, N>& out) {
  std::memcpy(out.data(), bytes.data() + offset, N);
}

Error invalid_keyslot(size_t slot, const std::string& why) {
  return Error(Errc::bad_header, "keyslot " + std::to_string(slot) + ": " + why);
}

// LUKS_check_keyslots plus LUKS_check_device_size: every area (active or not) starts after the
// header, ends before the payload and inside the image, and no two areas overlap.
Status check_keyslot_areas(const Luks1Header& h, uint64_t image_size) {
  const uint64_t area_sectors = h.key_material_size() / kLuks1SectorSize;
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    const Luks1Keyslot& ks = h.keyslots[i];
    if (ks.stripes != kLuks1Stripes) {
      return invalid_keyslot(
          i, std::to_string(ks.stripes) + " AF stripes, LUKS1 requires " + std::to_string(kLuks1Stripes));
    }
    const uint64_t start = ks.key_material_offset;
    if (start * kLuks1SectorSize < kLuks1HeaderIoSize) {
      return invalid_keyslot(i, "key material at sector " + std::to_string(start) + " overlaps the header");
    }
    if (start + area_sectors > h.payload_offset) {
      return invalid_keyslot(i, "key material (sectors " + std::to_string(start) + "-" +
                                    std::to_string(start + area_sectors) + ") passes the payload offset " +
                                    std::to_string(h.payload_offset));
    }
    if ((start + area_sectors) * kLuks1SectorSize > image_size) {
      return invalid_keyslot(i, "key material ends at byte " +
                                    std::to_string((start + area_sectors) * kLuks1SectorSize) +
                                    ", past the image end (" + std::to_string(image_size) + " bytes)");
    }
  }
  std::array<size_t, kLuks1NumKeyslots> order{};
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return h.keyslots[a].key_material_offset < h.keyslots[b].key_material_offset;
  });
  for (size_t i = 1; i < kLuks1NumKeyslots; ++i) {
    const auto& prev = h.keyslots[order[i - 1]];
    const auto& next = h.keyslots[order[i]];
    if (uint64_t{next.key_material_offset} < uint64_t{prev.key_material_offset} + area_sectors) {
      return invalid_keyslot(order[i - 1], "key material overlaps keyslot " + std::to_string(order[i]));
    }
  }
  return {};
}

}  // namespace

Status luks1_supported(const Luks1Header& h) {
  if (auto digest_size = hash_size(h.hash_spec); !digest_size) {
    return Error(Errc::unsupported, "LUKS1 hash spec '" + h.hash_spec + "' is not supported");
  }
  auto cipher = check_cipher_key_size(h.cipher_spec(), h.key_bytes);
  if (!cipher) {
    if (cipher.error().is(Errc::unsupported)) {
      return Error(Errc::unsupported, "LUKS1 cipher '" + h.cipher_spec() + "' with a " +
                                          std::to_string(h.key_bytes * 8) + "-bit key is not supported");
    }
    return Error(Errc::bad_header, cipher.error().message());
  }
  return {};
}

namespace {

Status validate(const Luks1Header& h, uint64_t image_size) {
  if (h.key_bytes == 0 || h.key_bytes > kMaxKeyBytes) {
    return Error(Errc::bad_header, "key size of " + std::to_string(h.key_bytes) + " bytes is invalid");
  }
  if (h.mk_digest_iterations == 0) return Error(Errc::bad_header, "volume key digest has 0 iterations");
  if (h.payload_offset == 0) {
    return Error(Errc::unsupported, "payload offset 0 (a detached LUKS1 header) is not supported");
  }
  RL_TRY(check_keyslot_areas(h, image_size));
  RL_TRY(check_pbkdf2_cost(h.mk_digest_iterations, "volume key digest"));
  // With 8 keyslots at most, the limit for one also bounds what all of them cost together.
  static_assert(kLuks1NumKeyslots <= kMaxKeyslotsCostInLimits);
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    if (!h.keyslots[i].is_active()) continue;
    if (h.keyslots[i].iterations == 0) return invalid_keyslot(i, "active with 0 iterations");
    RL_TRY(check_pbkdf2_cost(h.keyslots[i].iterations, "keyslot " + std::to_string(i)));
  }
  if (h.payload_offset_bytes() > image_size) {
    return Error(Errc::bad_header, "payload offset " + std::to_string(h.payload_offset_bytes()) +
                                       " is past the image end (" + std::to_string(image_size) + " bytes)");
  }
  // A known hash must be long enough for the digest; an unknown one makes the volume unsupported.
  if (auto digest_size = hash_size(h.hash_spec); digest_size && *digest_size < kLuks1DigestSize) {
    return Error(Errc::bad_header, "hash spec '" + h.hash_spec + "' is shorter than the 20-byte LUKS1 digest");
  }
  return {};
}

}  // namespace

uint64_t Luks1Header::key_material_size() const {
  const uint64_t split = uint64_t{key_bytes} * kLuks1Stripes;
  return round_up(split, kLuks1SectorSize);
}

Result<Luks1Header> parse_luks1_header(std::span<const uint8_t> bytes, uint64_t image_size) {
  if (bytes.size() < kLuks1HeaderSize) {
    return Error(Errc::bad_header, "only " + std::to_string(bytes.size()) + " bytes, a LUKS1 header needs " +
                                       std::to_string(kLuks1HeaderSize));
  }
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0) {
    return Error(Errc::bad_header, "no LUKS magic at offset 0");
  }
  const unsigned version = (unsigned{bytes[kOffVersion]} << 8) | bytes[kOffVersion + 1];
  if (version != 1) return Error(Errc::bad_header, "LUKS version " + std::to_string(version) + ", not 1");

  Luks1Header h;
  RL_ASSIGN(h.cipher_name, load_string_field(bytes, kOffCipherName, kLuks1NameSize, "cipher name"));
  RL_ASSIGN(h.cipher_mode, load_string_field(bytes, kOffCipherMode, kLuks1NameSize, "cipher mode"));
  RL_ASSIGN(h.hash_spec, load_string_field(bytes, kOffHashSpec, kLuks1NameSize, "hash spec"));
  RL_ASSIGN(h.uuid, load_string_field(bytes, kOffUuid, kLuks1UuidSize, "UUID"));
  h.payload_offset = static_cast<uint32_t>(load_be(bytes, kOffPayloadOffset, 4));
  h.key_bytes = static_cast<uint32_t>(load_be(bytes, kOffKeyBytes, 4));
  load_bytes(bytes, kOffMkDigest, h.mk_digest);
  load_bytes(bytes, kOffMkDigestSalt, h.mk_digest_salt);
  h.mk_digest_iterations = static_cast<uint32_t>(load_be(bytes, kOffMkDigestIterations, 4));
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    const size_t base = kOffKeyslots + i * kKeyslotSize;
    Luks1Keyslot& ks = h.keyslots[i];
    ks.active = static_cast<uint32_t>(load_be(bytes, base + kSlotOffActive, 4));
    ks.iterations = static_cast<uint32_t>(load_be(bytes, base + kSlotOffIterations, 4));
    load_bytes(bytes, base + kSlotOffSalt, ks.salt);
    ks.key_material_offset = static_cast<uint32_t>(load_be(bytes, base + kSlotOffMaterial, 4));
    ks.stripes = static_cast<uint32_t>(load_be(bytes, base + kSlotOffStripes, 4));
  }
  RL_TRY(validate(h, image_size));
  return h;
}

Result<std::array<uint8_t, kLuks1HeaderIoSize>> serialize_luks1_header(const Luks1Header& header) {
  std::array<uint8_t, kLuks1HeaderIoSize> out{};
  std::span<uint8_t> bytes(out);
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  out[kOffVersion + 1] = 1;
  RL_TRY(store_string_field(bytes, kOffCipherName, kLuks1NameSize, header.cipher_name, "cipher name"));
  RL_TRY(store_string_field(bytes, kOffCipherMode, kLuks1NameSize, header.cipher_mode, "cipher mode"));
  RL_TRY(store_string_field(bytes, kOffHashSpec, kLuks1NameSize, header.hash_spec, "hash spec"));
  RL_TRY(store_string_field(bytes, kOffUuid, kLuks1UuidSize, header.uuid, "UUID"));
  store_be(bytes, kOffPayloadOffset, 4, header.payload_offset);
  store_be(bytes, kOffKeyBytes, 4, header.key_bytes);
  std::memcpy(out.data() + kOffMkDigest, header.mk_digest.data(), kLuks1DigestSize);
  std::memcpy(out.data() + kOffMkDigestSalt, header.mk_digest_salt.data(), kLuks1SaltSize);
  store_be(bytes, kOffMkDigestIterations, 4, header.mk_digest_iterations);
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    const size_t base = kOffKeyslots + i * kKeyslotSize;
    const Luks1Keyslot& ks = header.keyslots[i];
    store_be(bytes, base + kSlotOffActive, 4, ks.active);
    store_be(bytes, base + kSlotOffIterations, 4, ks.iterations);
    std::memcpy(out.data() + base + kSlotOffSalt, ks.salt.data(), kLuks1SaltSize);
    store_be(bytes, base + kSlotOffMaterial, 4, ks.key_material_offset);
    store_be(bytes, base + kSlotOffStripes, 4, ks.stripes);
  }
  return out;
}

uint64_t place_luks1_keyslots(Luks1Header& header) {
  constexpr uint64_t kAlignSectors = kLuks1KeyslotAlignment / kLuks1SectorSize;
  const uint64_t area_sectors = header.key_material_size() / kLuks1SectorSize;
  uint64_t next = kAlignSectors;
  for (Luks1Keyslot& ks : header.keyslots) {
    ks.key_material_offset = static_cast<uint32_t>(next);
    ks.stripes = kLuks1Stripes;
    next = round_up(next + area_sectors, kAlignSectors);
  }
  return next;
}

}  // namespace rbdluks
