// LUKS1 keyslot operations and formatting, following cryptsetup's lib/luks1/keymanage.c (LUKS_open_key,
// LUKS_set_key, LUKS_del_key, LUKS_generate_phdr) so every image we write is one cryptsetup reads and
// the other way round.
#include "luks1_volume.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "cipher_spec.h"
#include "hash.h"
#include "keyslot_material.h"
#include "overwrite_backup.h"
#include "printable_text.h"
#include "random.h"
#include "volume_key_digest.h"

namespace rbdluks {
namespace {

constexpr uint64_t kDefaultDataOffset = uint64_t{4} << 20;  // librbd's `encryption format luks1`
constexpr double kDigestIterationsMs = 125;                 // cryptsetup's LUKS_MKD_ITERATIONS_MS

KdfParams pbkdf2_params(const std::string& hash, uint32_t iterations) {
  KdfParams params;
  params.type = KdfType::pbkdf2;
  params.hash = hash;
  params.iterations = iterations;
  return params;
}

KeyMaterialLayout material_layout(const Luks1Header& header, size_t slot) {
  KeyMaterialLayout layout;
  layout.offset = uint64_t{header.keyslots[slot].key_material_offset} * kLuks1SectorSize;
  layout.area_size = header.key_material_size();
  layout.key_bytes = header.key_bytes;
  layout.stripes = header.keyslots[slot].stripes;
  layout.af_hash = header.hash_spec;
  layout.cipher = header.cipher_spec();
  return layout;
}

Status check_slot_index(int slot, const std::string& where) {
  if (slot < 0 || slot >= static_cast<int>(kLuks1NumKeyslots)) {
    return Error(Errc::usage, "keyslot " + std::to_string(slot) + " of " + where + " does not exist (LUKS1 has 0-" +
                                  std::to_string(kLuks1NumKeyslots - 1) + ")");
  }
  return {};
}

std::string hex32(uint32_t v) {
  char text[11];
  std::snprintf(text, sizeof(text), "0x%08x", v);
  return text;
}

Error invalid_slot_state(size_t slot, uint32_t state, const std::string& where) {
  return Error(Errc::bad_header,
               "keyslot " + std::to_string(slot) + " of " + where + " is invalid (state " + hex32(state) + ")");
}

std::string to_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// A UUID as uuid_parse(3) accepts it, stored the way uuid_unparse(3) writes it (lower case).
Result<std::string> normalized_uuid(const std::string& uuid) {
  bool valid = uuid.size() == 36;
  for (size_t i = 0; valid && i < uuid.size(); ++i) {
    const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    valid = dash_position ? uuid[i] == '-' : std::isxdigit(static_cast<unsigned char>(uuid[i])) != 0;
  }
  if (!valid) return Error(Errc::usage, "'" + uuid + "' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
  return to_lower(uuid);
}

Result<std::string> random_uuid() {
  std::array<uint8_t, 16> b{};
  RL_TRY(fill_random(b));
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char text[37];
  std::snprintf(text, sizeof(text), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return std::string(text);
}

// The digest gets as many iterations as the keyslot KDF runs in 125 ms (LUKS_generate_phdr); with a
// forced keyslot count nothing was timed and cryptsetup uses its minimum.
uint32_t digest_iterations(const KdfRequest& request, const KdfParams& slot_params) {
  if (request.force_iterations || request.iter_time_ms == 0) return kLuks1MinIterations;
  const double scaled = static_cast<double>(slot_params.iterations) * kDigestIterationsMs / request.iter_time_ms;
  const double capped = std::min(scaled, static_cast<double>(std::numeric_limits<uint32_t>::max()));
  return std::max(static_cast<uint32_t>(capped), kLuks1MinIterations);
}

// The keyslot cost: the benchmarked (or forced) PBKDF2 iterations with the header's hash, at least
// cryptsetup's floor. The caller has checked that request asks for pbkdf2.
Result<KdfParams> keyslot_kdf(const KdfRequest& request, const std::string& hash, uint32_t key_bytes) {
  KdfRequest with_hash = request;
  with_hash.hash = hash;
  RL_ASSIGN(const KdfParams chosen, choose_kdf_params(with_hash, key_bytes));
  return pbkdf2_params(hash, std::max(chosen.iterations, kLuks1MinIterations));
}

VolumeLayout layout_of(const Luks1Header& header) {
  VolumeLayout layout;
  layout.version = 1;
  layout.uuid = header.uuid;
  layout.cipher = header.cipher_spec();
  layout.key_bytes = header.key_bytes;
  layout.sector_size = kLuks1SectorSize;
  layout.data_offset = header.payload_offset_bytes();
  return layout;
}

const char* slot_state(const Luks1Keyslot& ks) {
  if (ks.is_active()) return "active";
  if (ks.is_disabled()) return "inactive";
  return "invalid";
}

}  // namespace

Luks1Volume::Luks1Volume(RawImage& image, Luks1Header header)
    : image_(image), header_(std::move(header)), layout_(layout_of(header_)) {}

std::vector<KeyslotInfo> Luks1Volume::keyslots() const {
  std::vector<KeyslotInfo> out;
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    KeyslotInfo info;
    info.id = static_cast<int>(i);
    info.active = header_.keyslots[i].is_active();
    info.kdf = pbkdf2_params(header_.hash_spec, header_.keyslots[i].iterations);
    out.push_back(std::move(info));
  }
  return out;
}

Result<SecureBuffer> Luks1Volume::try_keyslot(size_t slot, std::span<const uint8_t> passphrase) const {
  const Luks1Keyslot& ks = header_.keyslots[slot];
  SecureBuffer derived(header_.key_bytes);
  RL_TRY(derive_key(pbkdf2_params(header_.hash_spec, ks.iterations), passphrase, ks.salt, derived.span()));
  RL_ASSIGN(SecureBuffer candidate, read_key_material(image_, material_layout(header_, slot), derived.span()));
  if (!verify_volume_key(candidate.span())) {
    return Error(Errc::bad_key,
                 "keyslot " + std::to_string(slot) + " of " + image_.name() + " does not open with this passphrase");
  }
  return candidate;
}

Status Luks1Volume::supported() const { return luks1_supported(header_); }

Result<UnlockedKey> Luks1Volume::open(std::span<const uint8_t> passphrase, std::optional<int> keyslot) const {
  RL_TRY(supported());
  if (keyslot) {
    RL_TRY(check_slot_index(*keyslot, image_.name()));
    if (!header_.keyslots[*keyslot].is_active()) {
      return Error(Errc::not_found, "keyslot " + std::to_string(*keyslot) + " of " + image_.name() + " is not active");
    }
    RL_ASSIGN(SecureBuffer key, try_keyslot(static_cast<size_t>(*keyslot), passphrase));
    return UnlockedKey{std::move(key), *keyslot};
  }
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    if (!header_.keyslots[i].is_active()) continue;
    auto key = try_keyslot(i, passphrase);
    if (key) return UnlockedKey{std::move(key).value(), static_cast<int>(i)};
    // Like LUKS_open_key_with_hdr: a wrong passphrase moves on, an I/O error stops.
    if (!key.error().is(Errc::bad_key)) return std::move(key).error();
  }
  return Error(Errc::bad_key, "no LUKS1 keyslot of " + image_.name() + " opens with this passphrase");
}

bool Luks1Volume::verify_volume_key(std::span<const uint8_t> volume_key) const {
  // mkDigest = PBKDF2(hashSpec, volume key, mkDigestSalt, mkDigestIterations, 20 bytes).
  return volume_key.size() == header_.key_bytes &&
         pbkdf2_digest_matches(header_.hash_spec, header_.mk_digest_iterations, header_.mk_digest_salt, volume_key,
                               header_.mk_digest);
}

Result<int> Luks1Volume::add_keyslot(std::span<const uint8_t> volume_key, std::span<const uint8_t> passphrase,
                                     const KdfRequest& kdf, std::optional<int> keyslot) {
  RL_TRY(supported());
  if (kdf.type != KdfType::pbkdf2) return Error(Errc::usage, "LUKS1 supports only pbkdf2");
  if (!verify_volume_key(volume_key)) {
    return Error(Errc::bad_key, "the volume key does not match the LUKS1 header of " + image_.name());
  }
  size_t slot = 0;
  if (keyslot) {
    RL_TRY(check_slot_index(*keyslot, image_.name()));
    slot = static_cast<size_t>(*keyslot);
    const Luks1Keyslot& ks = header_.keyslots[slot];
    if (ks.is_active())
      return Error(Errc::usage, "keyslot " + std::to_string(slot) + " of " + image_.name() + " is in use");
    if (!ks.is_disabled()) return invalid_slot_state(slot, ks.active, image_.name());
  } else {
    const auto free_slot = std::find_if(header_.keyslots.begin(), header_.keyslots.end(),
                                        [](const Luks1Keyslot& ks) { return ks.is_disabled(); });
    if (free_slot == header_.keyslots.end()) {
      return Error(Errc::no_space,
                   "all " + std::to_string(kLuks1NumKeyslots) + " LUKS1 keyslots of " + image_.name() + " are in use");
    }
    slot = static_cast<size_t>(free_slot - header_.keyslots.begin());
  }

  Luks1Header updated = header_;
  Luks1Keyslot& ks = updated.keyslots[slot];
  RL_ASSIGN(const KdfParams params, keyslot_kdf(kdf, updated.hash_spec, updated.key_bytes));
  ks.iterations = params.iterations;
  RL_TRY(fill_random(ks.salt));
  SecureBuffer derived(updated.key_bytes);
  RL_TRY(derive_key(params, passphrase, ks.salt, derived.span()));
  // The material must be durable before the header points at it.
  RL_TRY(write_key_material(image_, material_layout(updated, slot), derived.span(), volume_key));
  RL_TRY(image_.flush());
  ks.active = kLuks1KeyActive;
  RL_TRY(write_header(updated));
  header_ = std::move(updated);
  return static_cast<int>(slot);
}

Status Luks1Volume::remove_keyslot(int keyslot) {
  RL_TRY(supported());
  RL_TRY(check_slot_index(keyslot, image_.name()));
  const auto slot = static_cast<size_t>(keyslot);
  const Luks1Keyslot& current = header_.keyslots[slot];
  if (current.is_disabled()) {
    return Error(Errc::not_found, "keyslot " + std::to_string(slot) + " of " + image_.name() + " is not active");
  }
  if (!current.is_active()) return invalid_slot_state(slot, current.active, image_.name());

  Luks1Header updated = header_;
  Luks1Keyslot& ks = updated.keyslots[slot];
  ks.active = kLuks1KeyDisabled;
  ks.iterations = 0;
  ks.salt.fill(0);
  // Deactivate first: a crash before the wipe leaves an inactive slot, never a half-wiped active one.
  RL_TRY(write_header(updated));
  header_ = std::move(updated);
  const KeyMaterialLayout area = material_layout(header_, slot);
  RL_TRY(wipe_key_material(image_, area.offset, area.area_size));
  return image_.flush();
}

Status Luks1Volume::write_header(const Luks1Header& header) {
  RL_ASSIGN(const auto bytes, serialize_luks1_header(header));
  RL_TRY(image_.write(0, bytes));
  return image_.flush();
}

nlohmann::json Luks1Volume::describe() const {
  nlohmann::json slots = nlohmann::json::array();
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    const Luks1Keyslot& ks = header_.keyslots[i];
    nlohmann::json slot = {
        {"id", i},
        {"state", slot_state(ks)},
        {"key_material_offset", uint64_t{ks.key_material_offset} * kLuks1SectorSize},
        {"key_material_size", header_.key_material_size()},
        {"stripes", ks.stripes},
    };
    if (ks.is_active()) {
      slot["kdf"] = {{"type", "pbkdf2"}, {"hash", header_.hash_spec}, {"iterations", ks.iterations}};
    }
    slots.push_back(std::move(slot));
  }
  return {
      {"version", 1},
      {"uuid", header_.uuid},
      {"cipher", header_.cipher_spec()},
      {"cipher_name", header_.cipher_name},
      {"cipher_mode", header_.cipher_mode},
      {"hash", header_.hash_spec},
      {"key_bytes", header_.key_bytes},
      {"sector_size", kLuks1SectorSize},
      {"data_offset", header_.payload_offset_bytes()},
      {"payload_offset_sectors", header_.payload_offset},
      {"keyslots", std::move(slots)},
      {"digest", {{"type", "pbkdf2"}, {"hash", header_.hash_spec}, {"iterations", header_.mk_digest_iterations}}},
      {"unsupported", unsupported_reason(*this)},
  };
}

std::string Luks1Volume::describe_text() const {
  std::ostringstream out;
  // Every string here comes from the header, which whoever can write the image controls.
  out << "LUKS header information for " << printable(image_.name()) << "\n\n"
      << "Version:       \t1\n"
      << "Cipher name:   \t" << printable(header_.cipher_name) << "\n"
      << "Cipher mode:   \t" << printable(header_.cipher_mode) << "\n"
      << "Hash spec:     \t" << printable(header_.hash_spec) << "\n"
      << "Payload offset:\t" << header_.payload_offset << "\n"
      << "MK bits:       \t" << header_.key_bytes * 8 << "\n"
      << "MK iterations: \t" << header_.mk_digest_iterations << "\n"
      << "UUID:          \t" << printable(header_.uuid) << "\n"
      << unsupported_line(*this) << "\n";
  for (size_t i = 0; i < kLuks1NumKeyslots; ++i) {
    const Luks1Keyslot& ks = header_.keyslots[i];
    if (ks.is_active()) {
      out << "Key Slot " << i << ": ENABLED\n"
          << "\tIterations:         \t" << ks.iterations << "\n"
          << "\tKey material offset:\t" << ks.key_material_offset << "\n"
          << "\tAF stripes:         \t" << ks.stripes << "\n";
    } else if (ks.is_disabled()) {
      out << "Key Slot " << i << ": DISABLED\n";
    } else {
      out << "Key Slot " << i << ": INVALID (state " << hex32(ks.active) << ")\n";
    }
  }
  return out.str();
}

Result<std::unique_ptr<LuksVolume>> load_luks1(RawImage& image) {
  RL_ASSIGN(const uint64_t size, image.size());
  std::vector<uint8_t> bytes(static_cast<size_t>(std::min<uint64_t>(size, kLuks1HeaderIoSize)));
  RL_TRY(image.read(0, bytes));
  auto header = parse_luks1_header(bytes, size);
  if (!header) return std::move(header).error().context("LUKS1 header of " + image.name());
  return std::unique_ptr<LuksVolume>(new Luks1Volume(image, std::move(header).value()));
}

Result<std::unique_ptr<LuksVolume>> format_luks1(RawImage& image, const FormatOptions& options,
                                                 std::span<const uint8_t> volume_key,
                                                 std::span<const uint8_t> passphrase) {
  const std::string where = "formatting " + image.name() + " as LUKS1";
  auto usage = [&](const std::string& what) { return Error(Errc::usage, where + ": " + what); };
  if (options.version != 1) return usage("LUKS version " + std::to_string(options.version) + " requested");
  if (volume_key.size() != options.key_bytes) {
    return usage("volume key has " + std::to_string(volume_key.size()) + " bytes, the key size is " +
                 std::to_string(options.key_bytes));
  }
  if (options.kdf.type != KdfType::pbkdf2) return usage("LUKS1 supports only pbkdf2");

  Luks1Header header;
  {
    auto spec = parse_cipher_spec(options.cipher);
    if (!spec) return std::move(spec).error().context(where);
    auto key_size = check_cipher_key_size(options.cipher, options.key_bytes);
    if (!key_size) return std::move(key_size).error().context(where);
    header.cipher_name = spec->cipher;
    header.cipher_mode = spec->mode + "-" + spec->iv;
  }
  header.hash_spec = to_lower(options.kdf.hash);
  auto digest_size = hash_size(header.hash_spec);
  if (!digest_size || *digest_size < kLuks1DigestSize) return usage("hash '" + header.hash_spec + "' cannot be used");
  if (options.uuid) {
    RL_ASSIGN(header.uuid, normalized_uuid(*options.uuid));
  } else {
    RL_ASSIGN(header.uuid, random_uuid());
  }
  header.key_bytes = options.key_bytes;
  const uint64_t keyslots_end = place_luks1_keyslots(header);

  const uint64_t data_offset = options.data_offset.value_or(kDefaultDataOffset);
  if (data_offset % kLuks1SectorSize != 0 || data_offset / kLuks1SectorSize > std::numeric_limits<uint32_t>::max()) {
    return usage("data offset " + std::to_string(data_offset) + " is not a 32-bit count of 512-byte sectors");
  }
  if (data_offset < keyslots_end * kLuks1SectorSize) {
    return usage("data offset " + std::to_string(data_offset) + " is inside the keyslot areas, which end at " +
                 std::to_string(keyslots_end * kLuks1SectorSize));
  }
  header.payload_offset = static_cast<uint32_t>(data_offset / kLuks1SectorSize);
  RL_ASSIGN(const uint64_t image_size, image.size());
  if (image_size < data_offset) {
    return Error(Errc::no_space, where + ": the image has " + std::to_string(image_size) +
                                     " bytes, the header and keyslots need " + std::to_string(data_offset));
  }
  if (image.read_only()) return Error(Errc::failure, where + ": the image is open read-only");

  Luks1Keyslot& slot0 = header.keyslots[0];
  RL_ASSIGN(const KdfParams slot_kdf, keyslot_kdf(options.kdf, header.hash_spec, header.key_bytes));
  slot0.iterations = slot_kdf.iterations;
  header.mk_digest_iterations = digest_iterations(options.kdf, slot_kdf);
  RL_TRY(fill_random(header.mk_digest_salt));
  RL_TRY(fill_random(slot0.salt));
  {
    RL_ASSIGN(const auto digest, pbkdf2_digest(header.hash_spec, header.mk_digest_iterations, header.mk_digest_salt,
                                               volume_key, header.mk_digest.size()));
    std::copy(digest.begin(), digest.end(), header.mk_digest.begin());
  }
  SecureBuffer derived(header.key_bytes);
  RL_TRY(derive_key(slot_kdf, passphrase, slot0.salt, derived.span()));
  slot0.active = kLuks1KeyActive;

  // What we are about to write must be a header we would load.
  RL_ASSIGN(const auto header_bytes, serialize_luks1_header(header));
  {
    auto reparsed = parse_luks1_header(header_bytes, image_size);
    if (!reparsed) return std::move(reparsed).error().context(where);
  }

  // Keep what we overwrite, so that a failed write can put it back.
  RL_ASSIGN(const OverwriteBackup backup, OverwriteBackup::take(image, data_offset));
  const auto write_volume = [&]() -> Status {
    RL_TRY(write_key_material(image, material_layout(header, 0), derived.span(), volume_key));
    for (size_t i = 1; i < kLuks1NumKeyslots; ++i) {
      const KeyMaterialLayout area = material_layout(header, i);
      RL_TRY(wipe_key_material(image, area.offset, area.area_size));
    }
    RL_TRY(image.flush());
    // The header and the zeroed gap up to the first keyslot, in one write: no stale bytes of an
    // older header survive in front of the keyslots.
    std::vector<uint8_t> header_area(uint64_t{slot0.key_material_offset} * kLuks1SectorSize, 0);
    std::copy(header_bytes.begin(), header_bytes.end(), header_area.begin());
    RL_TRY(image.write(0, header_area));
    return image.flush();
  };
  if (auto written = write_volume(); !written) return backup.restore(std::move(written).error());
  return std::unique_ptr<LuksVolume>(new Luks1Volume(image, std::move(header)));
}

}  // namespace rbdluks
