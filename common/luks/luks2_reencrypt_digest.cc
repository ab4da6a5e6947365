// The reencryption digest: the serialisation of cryptsetup's reencrypt_assembly_verification_data
// (strings as their bytes, numbers big-endian, a segment size as "dynamic" or a number), hashed as
// any other LUKS2 "pbkdf2" digest.
#include "luks2_reencrypt_digest.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "byte_fields.h"
#include "luks2_keyslot.h"
#include "volume_key_digest.h"

namespace rbdluks {
namespace {

constexpr size_t kMaxString = 64;  // cryptsetup's MAX_STR: a longer string makes the state invalid

// Writes the fields into out, or only counts their bytes while out is empty (the first of two
// passes, so that the keys go straight into locked memory of the right size).
class Serializer {
 public:
  explicit Serializer(std::span<uint8_t> out = {}) : out_(out) {}

  bool ok = true;
  size_t length() const { return length_; }

  void string(const std::string& text) {
    if (text.empty() || text.size() > kMaxString) ok = false;
    bytes(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
  void u64(uint64_t value) {
    std::array<uint8_t, 8> be{};
    store_be(be, 0, be.size(), value);
    bytes(be);
  }
  void u32(uint32_t value) {
    std::array<uint8_t, 4> be{};
    store_be(be, 0, be.size(), value);
    bytes(be);
  }
  void size(const std::optional<uint64_t>& value) {
    if (value) {
      u64(*value);
    } else {
      string("dynamic");
    }
  }
  void bytes(std::span<const uint8_t> data) {
    if (!out_.empty()) std::copy(data.begin(), data.end(), out_.subspan(length_, data.size()).begin());
    length_ += data.size();
  }

 private:
  std::span<uint8_t> out_;
  size_t length_ = 0;
};

void serialize_segment(Serializer& out, const Luks2Segment& segment) {
  out.string(segment.unknown_type.value_or("crypt"));
  out.u64(segment.offset);
  out.size(segment.size);
  if (segment.unknown_type) {
    if (*segment.unknown_type != "linear") out.ok = false;
    return;
  }
  out.u64(segment.iv_tweak);
  out.string(segment.encryption);
  out.u32(segment.sector_size);
}

const Luks2Segment* segment_with_flag(const Luks2Metadata& metadata, const std::string& flag) {
  for (const auto& [id, segment] : metadata.segments) {
    if (std::find(segment.flags.begin(), segment.flags.end(), flag) != segment.flags.end()) return &segment;
  }
  return nullptr;
}

Error bad(const std::string& what) { return Error(Errc::bad_header, "reencryption metadata: " + what); }

}  // namespace

Result<SecureBuffer> luks2_reencrypt_verification_data(const Luks2Metadata& metadata, std::span<const uint8_t> old_key,
                                                       std::span<const uint8_t> new_key, uint8_t version) {
  if (metadata.reencrypt_keyslots.empty()) return bad("there is no reencrypt keyslot");
  if (old_key.empty() && new_key.empty()) return bad("neither the old nor the new data is encrypted");
  const Luks2ReencryptKeyslot& slot = metadata.reencrypt_keyslots.begin()->second;
  const Luks2Segment* previous = segment_with_flag(metadata, "backup-previous");
  const Luks2Segment* final_segment = segment_with_flag(metadata, "backup-final");
  if (previous == nullptr || final_segment == nullptr) return bad("a backup segment is missing");

  const auto serialize = [&](Serializer& out) {
    const std::array<uint8_t, 2> magic{0x76, static_cast<uint8_t>(0x30 + version)};  // "v2"
    out.bytes(magic);
    out.bytes(old_key);
    out.bytes(new_key);
    out.string(slot.mode);
    out.string(slot.direction);
    out.string(slot.area_type);
    out.u64(slot.area_offset);
    out.u64(slot.area_size);
    if (slot.area_type.ends_with("checksum")) {
      out.string(slot.hash);
      out.u32(slot.sector_size);
    }
    if (slot.area_type.starts_with("datashift")) out.u64(slot.shift_size.value_or(0));
    serialize_segment(out, *previous);
    serialize_segment(out, *final_segment);
    if (const Luks2Segment* moved = segment_with_flag(metadata, "backup-moved-segment")) serialize_segment(out, *moved);
  };
  Serializer count;
  serialize(count);
  if (!count.ok) return bad("a string is empty or longer than 64 bytes, or a segment has an unknown type");
  SecureBuffer data(count.length());
  Serializer write(data.span());
  serialize(write);
  return data;
}

Status assign_luks2_reencrypt_digest(Luks2Metadata& metadata, std::span<const uint8_t> old_key,
                                     std::span<const uint8_t> new_key, bool minimal_cost) {
  RL_ASSIGN(const SecureBuffer data,
            luks2_reencrypt_verification_data(metadata, old_key, new_key, kLuks2ReencryptVersion));
  const int keyslot = metadata.reencrypt_keyslots.begin()->first;
  if (const auto old_digest = luks2_keyslot_digest(metadata, keyslot)) {
    Luks2Digest& digest = metadata.digests.at(*old_digest);
    std::erase(digest.keyslots, keyslot);
    if (digest.keyslots.empty() && digest.segments.empty()) metadata.digests.erase(*old_digest);
  }
  RL_ASSIGN(Luks2Digest digest, new_luks2_digest(data.span(), minimal_cost));
  digest.keyslots = {keyslot};
  RL_ASSIGN(const int id, luks2_free_digest_id(metadata));
  metadata.digests[id] = std::move(digest);
  return {};
}

bool luks2_reencrypt_digest_matches(const Luks2Metadata& metadata, std::span<const uint8_t> old_key,
                                    std::span<const uint8_t> new_key) {
  if (metadata.reencrypt_keyslots.empty()) return false;
  const auto digest_id = luks2_keyslot_digest(metadata, metadata.reencrypt_keyslots.begin()->first);
  if (!digest_id) return false;
  auto data = luks2_reencrypt_verification_data(metadata, old_key, new_key, kLuks2ReencryptVersion);
  if (!data) return false;
  const Luks2Digest& digest = metadata.digests.at(*digest_id);
  return pbkdf2_digest_matches(digest.hash, digest.iterations, digest.salt, data->span(), digest.digest);
}

}  // namespace rbdluks
