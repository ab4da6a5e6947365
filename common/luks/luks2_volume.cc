// Luks2Volume: keyslots of a LUKS2 header opened, added and removed the way cryptsetup 2.6 does it.
//
// The header (luks2_header) is metadata only; this file ties it to the crypto: a keyslot's KDF
// turns a passphrase into the key of its area, the area holds the AF-split volume key
// (keyslot_material), and the "pbkdf2" digest tells whether what came out is the volume key.
#include "luks2_volume.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cipher_spec.h"
#include "keyslot_material.h"
#include "luks2_header.h"
#include "luks2_keyslot.h"
#include "luks2_reencrypt_state.h"
#include "overwrite_backup.h"
#include "printable_text.h"
#include "volume_key_digest.h"

namespace rbdluks {
namespace {

constexpr uint64_t kHdrSize = uint64_t{16} << 10;  // cryptsetup's and librbd's metadata area
constexpr uint64_t kDefaultDataOffset = 16 << 20;  // librbd's and cryptsetup's data offset
constexpr uint32_t kStripes = 4000;

class Luks2Volume final : public LuksVolume {
 public:
  Luks2Volume(RawImage& image, Luks2LoadResult loaded) : image_(image), header_(std::move(loaded.header)) {
    copies_valid_ = {loaded.primary_valid, loaded.secondary_valid};
    refresh_layout();
  }

  const VolumeLayout& layout() const override { return layout_; }

  std::vector<KeyslotInfo> keyslots() const override {
    std::vector<KeyslotInfo> out;
    for (const auto& [id, ks] : header_.metadata.keyslots) out.push_back({id, true, !bound(id), ks.kdf});
    return out;
  }

  Status supported() const override {
    std::string reasons;
    for (const auto& reason : header_.metadata.unsupported) reasons += (reasons.empty() ? "" : "; ") + reason;
    if (auto cipher = check_cipher_key_size(layout_.cipher, layout_.key_bytes); !cipher) {
      reasons += (reasons.empty() ? "" : "; ") + cipher.error().message();
    }
    if (reasons.empty()) return {};
    return Error(Errc::unsupported, reasons);
  }

  Result<UnlockedKey> open(std::span<const uint8_t> passphrase, std::optional<int> keyslot) const override {
    RL_TRY(supported());
    if (keyslot) {
      if (header_.metadata.keyslots.count(*keyslot) == 0) {
        return Error(Errc::bad_key, image_.name() + ": keyslot " + std::to_string(*keyslot) + " is not active");
      }
      if (!bound(*keyslot)) return unbound_error(*keyslot);
      return try_keyslot(*keyslot, passphrase);
    }
    // cryptsetup's order: "prefer" slots first, then normal ones; "ignore" slots only when named.
    // Unbound slots are never tried: whatever key they hold is not the volume key.
    std::vector<int> order;
    for (const Luks2Priority priority : {Luks2Priority::prefer, Luks2Priority::normal}) {
      for (const auto& [id, ks] : header_.metadata.keyslots) {
        if (ks.priority.value_or(Luks2Priority::normal) == priority && bound(id)) order.push_back(id);
      }
    }
    for (const int id : order) {
      auto key = try_keyslot(id, passphrase);
      if (key || !key.error().is(Errc::bad_key)) return key;
    }
    return Error(Errc::bad_key, image_.name() + ": no keyslot opens with this passphrase");
  }

  bool verify_volume_key(std::span<const uint8_t> volume_key) const override {
    const Luks2Digest* digest = segment_digest();
    return digest != nullptr && volume_key.size() == layout_.key_bytes &&
           pbkdf2_digest_matches(digest->hash, digest->iterations, digest->salt, volume_key, digest->digest);
  }

  Result<int> add_keyslot(std::span<const uint8_t> volume_key, std::span<const uint8_t> passphrase,
                          const KdfRequest& kdf, std::optional<int> keyslot) override {
    RL_TRY(supported());
    if (!verify_volume_key(volume_key)) {
      return Error(Errc::bad_key, image_.name() + ": the volume key does not match the header's digest");
    }
    Luks2Header updated = header_;
    RL_ASSIGN(const int id, pick_free_slot(keyslot));
    RL_TRY(add_keyslot_to(updated, id, volume_key, passphrase, kdf));
    for (auto& [digest_id, digest] : updated.metadata.digests) {
      if (std::find(digest.segments.begin(), digest.segments.end(), 0) != digest.segments.end()) {
        digest.keyslots.push_back(id);
        std::sort(digest.keyslots.begin(), digest.keyslots.end());
      }
    }
    // The key material sits in an area no keyslot uses, so the header still describes the old state
    // until write_luks2_header makes the new keyslot visible.
    RL_TRY(write_luks2_header(image_, updated));
    header_ = std::move(updated);
    copies_valid_ = {true, true};
    return id;
  }

  Status remove_keyslot(int keyslot) override {
    RL_TRY(supported());
    auto it = header_.metadata.keyslots.find(keyslot);
    if (it == header_.metadata.keyslots.end()) {
      return Error(Errc::usage, image_.name() + ": keyslot " + std::to_string(keyslot) + " is not active");
    }
    const uint64_t area_offset = it->second.area_offset;
    const uint64_t area_size = it->second.area_size;
    Luks2Header updated = header_;
    updated.metadata.keyslots.erase(keyslot);
    for (auto& [digest_id, digest] : updated.metadata.digests) {
      std::erase(digest.keyslots, keyslot);
    }
    luks2_tokens_drop_keyslot(updated.metadata, keyslot);
    // Header first: if it fails nothing changed; if the wipe then fails, the slot is already gone.
    RL_TRY(write_luks2_header(image_, updated));
    header_ = std::move(updated);
    copies_valid_ = {true, true};
    RL_TRY(wipe_key_material(image_, area_offset, area_size));
    return image_.flush();
  }

  nlohmann::json describe() const override;
  std::string describe_text() const override;

  // Where an unfinished reencryption stands (null when there is none), for dump.
  nlohmann::json reencryption_json() const {
    const Luks2Metadata& md = header_.metadata;
    if (!luks2_reencrypt_in_progress(md)) return nullptr;
    auto raw_size = image_.size();
    if (!raw_size) return {{"error", raw_size.error().message()}};
    auto state = luks2_reencrypt_state(md, *raw_size);
    if (!state) return {{"error", state.error().message()}};
    nlohmann::json hotzone = nullptr;
    if (state->hotzone_length) {
      hotzone = {{"offset", state->hotzone_begin(*state->hotzone_length)}, {"length", *state->hotzone_length}};
    }
    return {{"mode", state->resilience.mode},
            {"direction", state->resilience.direction},
            {"resilience", state->resilience.area_type},
            {"resilience_hash", state->resilience.area_type == "checksum" ? nlohmann::json(state->resilience.hash)
                                                                          : nlohmann::json(nullptr)},
            {"progress", state->progress},
            {"data_size", state->data_size},
            {"hotzone", hotzone},
            {"old_cipher", state->previous.encryption},
            {"new_cipher", state->next.encryption}};
  }

  // format_luks2 builds the header in memory through the same path as add_keyslot.
  static Status add_keyslot_to(Luks2Header& header, RawImage& image, int id, std::span<const uint8_t> volume_key,
                               std::span<const uint8_t> passphrase, const KdfRequest& request,
                               const std::string& cipher);

 private:
  Status add_keyslot_to(Luks2Header& header, int id, std::span<const uint8_t> volume_key,
                        std::span<const uint8_t> passphrase, const KdfRequest& request) const {
    return add_keyslot_to(header, image_, id, volume_key, passphrase, request, layout_.cipher);
  }

  const Luks2Digest* segment_digest() const {
    const auto id = luks2_segment_digest(header_.metadata, 0);
    return id ? &header_.metadata.digests.at(*id) : nullptr;
  }

  const Luks2Digest* keyslot_digest(int keyslot) const {
    const auto id = luks2_keyslot_digest(header_.metadata, keyslot);
    return id ? &header_.metadata.digests.at(*id) : nullptr;
  }

  // The keyslot's digest covers the data segment, so what the keyslot opens to is the volume key.
  bool bound(int keyslot) const {
    const Luks2Digest* digest = keyslot_digest(keyslot);
    return digest != nullptr && digest == segment_digest();
  }

  Error unbound_error(int keyslot) const {
    return Error(Errc::bad_key, image_.name() + ": keyslot " + std::to_string(keyslot) +
                                    " is unbound: the key it holds is not the volume key");
  }

  Result<UnlockedKey> try_keyslot(int id, std::span<const uint8_t> passphrase) const {
    if (!bound(id)) return unbound_error(id);
    RL_ASSIGN(SecureBuffer key, open_luks2_keyslot(image_, header_.metadata, id, passphrase));
    return UnlockedKey{std::move(key), id};
  }

  Result<int> pick_free_slot(std::optional<int> wanted) const {
    if (wanted) {
      if (*wanted < 0 || *wanted >= kLuks2MaxKeyslots) {
        return Error(Errc::usage, "keyslot " + std::to_string(*wanted) + " is out of range (0.." +
                                      std::to_string(kLuks2MaxKeyslots - 1) + ")");
      }
      if (header_.metadata.keyslots.count(*wanted) != 0) {
        return Error(Errc::usage, image_.name() + ": keyslot " + std::to_string(*wanted) + " is in use");
      }
      return *wanted;
    }
    for (int id = 0; id < kLuks2MaxKeyslots; ++id) {
      if (header_.metadata.keyslots.count(id) == 0) return id;
    }
    return Error(Errc::no_space, image_.name() + ": all " + std::to_string(kLuks2MaxKeyslots) + " keyslots are in use");
  }

  void refresh_layout() {
    layout_.version = 2;
    layout_.uuid = header_.binary.uuid;
    const auto& segments = header_.metadata.segments;
    if (!segments.empty()) {
      const Luks2Segment& seg = segments.begin()->second;
      layout_.cipher = seg.encryption;
      layout_.sector_size = seg.sector_size;
      layout_.data_offset = seg.offset;
      layout_.data_size = seg.size;
    }
    if (const Luks2Digest* digest = segment_digest(); digest != nullptr && !digest->keyslots.empty()) {
      // A keyslot of priority "ignore" may hold a key of another size, which never opens (the
      // librbd fence of a reencryption, common/reencrypt/librbd_fence.h); the others hold the
      // volume key.
      const auto& slots = header_.metadata.keyslots;
      const auto opens = std::find_if(digest->keyslots.begin(), digest->keyslots.end(),
                                      [&](int id) { return slots.at(id).priority != Luks2Priority::ignore; });
      layout_.key_bytes = slots.at(opens != digest->keyslots.end() ? *opens : digest->keyslots.front()).key_size;
    } else if (!header_.metadata.keyslots.empty()) {
      layout_.key_bytes = header_.metadata.keyslots.begin()->second.key_size;
    }
  }

  RawImage& image_;
  Luks2Header header_;
  std::pair<bool, bool> copies_valid_;
  VolumeLayout layout_;
};

Status Luks2Volume::add_keyslot_to(Luks2Header& header, RawImage& image, int id, std::span<const uint8_t> volume_key,
                                   std::span<const uint8_t> passphrase, const KdfRequest& request,
                                   const std::string& cipher) {
  RL_ASSIGN(KdfParams kdf, choose_kdf_params(request, volume_key.size()));
  kdf.hash = request.hash;  // also the AF hash, as cryptsetup takes it from --hash
  return add_luks2_keyslot(header, image, id, volume_key, passphrase, kdf, cipher);
}

std::string size_text(const std::optional<uint64_t>& size) {
  return size ? std::to_string(*size) + " [bytes]" : "(whole device)";
}

// The KDF type as stored, also when rbd-luks does not implement it.
std::string kdf_type_text(const Luks2Keyslot& ks) {
  return ks.unknown_kdf.value_or(std::string(kdf_name(ks.kdf.type)));
}

nlohmann::json kdf_json(const Luks2Keyslot& ks) {
  const KdfParams& kdf = ks.kdf;
  if (kdf.type == KdfType::pbkdf2) {
    return {{"type", kdf_type_text(ks)}, {"hash", kdf.hash}, {"iterations", kdf.iterations}};
  }
  return {{"type", kdf_type_text(ks)}, {"time", kdf.iterations}, {"memory", kdf.memory_kib}, {"cpus", kdf.parallel}};
}

nlohmann::json Luks2Volume::describe() const {
  const Luks2Metadata& md = header_.metadata;
  nlohmann::json slots = nlohmann::json::array();
  for (const auto& [id, ks] : md.keyslots) {
    nlohmann::json slot = {
        {"id", id},
        {"state", "active"},
        {"unbound", !bound(id)},
        {"type", "luks2"},
        {"key_size", ks.key_size},
        {"priority", ks.priority ? static_cast<int>(*ks.priority) : 1},
        {"kdf", kdf_json(ks)},
        {"af", {{"type", "luks1"}, {"stripes", ks.af_stripes}, {"hash", ks.af_hash}}},
        {"area", {{"offset", ks.area_offset}, {"size", ks.area_size}, {"encryption", ks.area_encryption}}},
    };
    slots.push_back(std::move(slot));
  }
  nlohmann::json segments = nlohmann::json::array();
  for (const auto& [id, seg] : md.segments) {
    segments.push_back({{"id", id},
                        {"type", seg.unknown_type.value_or("crypt")},
                        {"offset", seg.offset},
                        {"size", seg.size ? nlohmann::json(*seg.size) : nlohmann::json("dynamic")},
                        {"iv_tweak", seg.iv_tweak},
                        {"encryption", seg.encryption},
                        {"sector_size", seg.sector_size},
                        {"flags", seg.flags}});
  }
  nlohmann::json digests = nlohmann::json::array();
  for (const auto& [id, d] : md.digests) {
    digests.push_back({{"id", id},
                       {"type", "pbkdf2"},
                       {"keyslots", d.keyslots},
                       {"segments", d.segments},
                       {"hash", d.hash},
                       {"iterations", d.iterations}});
  }
  return {
      {"version", 2},
      {"uuid", header_.binary.uuid},
      {"label", header_.binary.label},
      {"subsystem", header_.binary.subsystem},
      {"epoch", header_.binary.seqid},
      {"metadata_size", header_.hdr_size},
      {"keyslots_size", md.config.keyslots_size},
      {"cipher", layout_.cipher},
      {"key_bytes", layout_.key_bytes},
      {"sector_size", layout_.sector_size},
      {"data_offset", layout_.data_offset},
      {"data_size", layout_.data_size ? nlohmann::json(*layout_.data_size) : nlohmann::json(nullptr)},
      {"header_copies", {{"primary_valid", copies_valid_.first}, {"secondary_valid", copies_valid_.second}}},
      {"flags", md.config.flags},
      {"keyslots", std::move(slots)},
      {"segments", std::move(segments)},
      {"digests", std::move(digests)},
      {"tokens", nlohmann::json::parse(md.tokens.dump())},
      {"unsupported", unsupported_reason(*this)},
      {"reencryption", reencryption_json()},
  };
}

std::string Luks2Volume::describe_text() const {
  const Luks2Metadata& md = header_.metadata;
  std::ostringstream out;
  // Every string here comes from the header, which whoever can write the image controls.
  auto or_none = [](const std::string& s, const char* none) { return s.empty() ? std::string(none) : printable(s); };
  out << "LUKS header information for " << printable(image_.name()) << "\n"
      << "Version:       \t2\n"
      << "Epoch:         \t" << header_.binary.seqid << "\n"
      << "Metadata area: \t" << header_.hdr_size << " [bytes]\n"
      << "Keyslots area: \t" << md.config.keyslots_size << " [bytes]\n"
      << "UUID:          \t" << printable(header_.binary.uuid) << "\n"
      << "Label:         \t" << or_none(header_.binary.label, "(no label)") << "\n"
      << "Subsystem:     \t" << or_none(header_.binary.subsystem, "(no subsystem)") << "\n"
      << unsupported_line(*this);
  if (!copies_valid_.first || !copies_valid_.second) {
    out << "Header copies: \t" << (copies_valid_.first ? "primary ok" : "primary DAMAGED") << ", "
        << (copies_valid_.second ? "secondary ok" : "secondary DAMAGED") << " (repaired on the next change)\n";
  }
  if (const nlohmann::json r = reencryption_json(); !r.is_null()) {
    out << "Reencryption:  \t";
    if (r.contains("error")) {
      out << printable(r["error"].get<std::string>()) << "\n";
    } else {
      out << r["mode"].get<std::string>() << ", " << r["direction"].get<std::string>() << ", resilience "
          << r["resilience"].get<std::string>();
      if (!r["resilience_hash"].is_null()) out << " (" << printable(r["resilience_hash"].get<std::string>()) << ")";
      out << ": " << r["progress"].get<uint64_t>() << " of " << r["data_size"].get<uint64_t>() << " bytes done";
      if (!r["hotzone"].is_null()) {
        out << "; interrupted while rewriting [" << r["hotzone"]["offset"].get<uint64_t>() << ", +"
            << r["hotzone"]["length"].get<uint64_t>() << ")";
      }
      out << "\n";
    }
  }
  out << "\nData segments:\n";
  for (const auto& [id, seg] : md.segments) {
    out << "  " << id << ": " << printable(seg.unknown_type.value_or("crypt")) << "\n"
        << "\toffset: " << seg.offset << " [bytes]\n"
        << "\tlength: " << size_text(seg.size) << "\n"
        << "\tcipher: " << printable(seg.encryption) << "\n"
        << "\tsector: " << seg.sector_size << " [bytes]\n";
  }
  out << "\nKeyslots:\n";
  for (const auto& [id, ks] : md.keyslots) {
    out << "  " << id << ": luks2" << (bound(id) ? "" : " (unbound)") << "\n"
        << "\tKey:        " << ks.key_size * 8 << " bits\n"
        << (ks.priority == Luks2Priority::ignore   ? "\tPriority:   ignore\n"
            : ks.priority == Luks2Priority::prefer ? "\tPriority:   prefer\n"
                                                   : "")
        << "\tCipher:     " << printable(ks.area_encryption) << "\n"
        << "\tPBKDF:      " << printable(kdf_type_text(ks)) << "\n";
    if (ks.kdf.type == KdfType::pbkdf2) {
      out << "\tHash:       " << printable(ks.kdf.hash) << "\n\tIterations: " << ks.kdf.iterations << "\n";
    } else {
      out << "\tTime cost:  " << ks.kdf.iterations << "\n\tMemory:     " << ks.kdf.memory_kib
          << "\n\tThreads:    " << ks.kdf.parallel << "\n";
    }
    out << "\tAF stripes: " << ks.af_stripes << "\n"
        << "\tAF hash:    " << printable(ks.af_hash) << "\n"
        << "\tArea offset:" << ks.area_offset << " [bytes]\n"
        << "\tArea length:" << ks.area_size << " [bytes]\n";
  }
  out << "Tokens:\n";
  for (const auto& [id, token] : md.tokens.items()) {
    out << "  " << printable(id) << ": " << printable(token.value("type", std::string("unknown"))) << "\n";
  }
  out << "Digests:\n";
  for (const auto& [id, d] : md.digests) {
    out << "  " << id << ": pbkdf2\n"
        << "\tHash:       " << printable(d.hash) << "\n"
        << "\tIterations: " << d.iterations << "\n";
  }
  return out.str();
}

Status check_format_options(const FormatOptions& options, std::span<const uint8_t> volume_key) {
  RL_TRY(check_cipher_key_size(options.cipher, volume_key.size()));
  if (volume_key.size() != options.key_bytes) {
    return Error(Errc::usage, "the volume key has " + std::to_string(volume_key.size()) + " bytes, not " +
                                  std::to_string(options.key_bytes));
  }
  const uint32_t s = options.sector_size;
  if (s != 512 && s != 1024 && s != 2048 && s != 4096) {
    return Error(Errc::usage, "sector size " + std::to_string(s) + " is not 512, 1024, 2048 or 4096");
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<LuksVolume>> load_luks2(RawImage& image) {
  auto loaded = read_luks2_header(image);
  if (!loaded) return std::move(loaded).error();
  return std::unique_ptr<LuksVolume>(new Luks2Volume(image, std::move(loaded).value()));
}

Result<std::unique_ptr<LuksVolume>> format_luks2(RawImage& image, const FormatOptions& options,
                                                 std::span<const uint8_t> volume_key,
                                                 std::span<const uint8_t> passphrase) {
  RL_TRY(check_format_options(options, volume_key));
  const uint64_t data_offset = options.data_offset.value_or(kDefaultDataOffset);
  const uint64_t keyslot_area = luks2_keyslot_area_size(volume_key.size(), kStripes);
  if (data_offset % 4096 != 0 || data_offset < 2 * kHdrSize + keyslot_area) {
    return Error(Errc::usage, "data offset " + std::to_string(data_offset) +
                                  " must be a multiple of 4096 and at least " +
                                  std::to_string(2 * kHdrSize + keyslot_area) + " bytes");
  }
  RL_ASSIGN(const uint64_t image_size, image.size());
  if (image_size < data_offset + options.sector_size) {
    return Error(Errc::no_space, image.name() + " (" + std::to_string(image_size) +
                                     " bytes) is too small for a LUKS2 header with a data offset of " +
                                     std::to_string(data_offset) + " bytes");
  }
  const uint64_t keyslots_size = std::min<uint64_t>(data_offset - 2 * kHdrSize, kLuks2MaxKeyslotsSize);
  RL_ASSIGN(Luks2Header header, new_luks2_header(kHdrSize, keyslots_size, options.uuid.value_or("")));

  Luks2Segment segment;
  segment.offset = data_offset;
  segment.encryption = options.cipher;
  segment.sector_size = options.sector_size;
  header.metadata.segments[0] = std::move(segment);

  RL_ASSIGN(Luks2Digest digest, new_luks2_digest(volume_key, options.kdf.force_iterations.has_value()));
  digest.keyslots = {0};
  digest.segments = {0};
  header.metadata.digests[0] = std::move(digest);

  // Everything that can fail without touching the image has been done; keep what we overwrite so a
  // failed write can put it back.
  RL_ASSIGN(const OverwriteBackup backup, OverwriteBackup::take(image, 2 * kHdrSize + keyslots_size));
  // cryptsetup wipes the keyslots area so that no key material of an earlier format survives.
  if (auto wiped = image.write_zeroes(2 * kHdrSize, keyslots_size); !wiped) {
    return backup.restore(std::move(wiped).error());
  }
  if (auto added = Luks2Volume::add_keyslot_to(header, image, 0, volume_key, passphrase, options.kdf, options.cipher);
      !added) {
    return backup.restore(std::move(added).error());
  }
  if (auto written = write_luks2_header(image, header); !written) return backup.restore(std::move(written).error());
  return load_luks2(image);
}

}  // namespace rbdluks
