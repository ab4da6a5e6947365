// LUKS2 "luks2" keyslots: the KDF turns a passphrase into the key of the keyslot's area, the area
// holds the AF-split key (keyslot_material), and the keyslot's "pbkdf2" digest says whether what
// came out is the key.
#include "luks2_keyslot.h"

#include <algorithm>

#include "keyslot_material.h"
#include "random.h"
#include "volume_key_digest.h"

namespace rbdluks {
namespace {

constexpr size_t kSaltSize = 32;  // LUKS_SALTSIZE
constexpr uint32_t kStripes = 4000;
constexpr uint32_t kDigestIterTimeMs = 125;      // cryptsetup's LUKS_MKD_ITERATIONS_MS
constexpr uint32_t kDigestMinIterations = 1000;  // LUKS_MKD_ITERATIONS_MIN

KeyMaterialLayout material_layout(const Luks2Keyslot& ks) {
  KeyMaterialLayout layout;
  layout.offset = ks.area_offset;
  layout.area_size = ks.area_size;
  layout.key_bytes = ks.key_size;
  layout.stripes = ks.af_stripes;
  layout.af_hash = ks.af_hash;
  layout.cipher = ks.area_encryption;
  return layout;
}

}  // namespace

std::optional<int> luks2_keyslot_digest(const Luks2Metadata& metadata, int keyslot) {
  for (const auto& [id, digest] : metadata.digests) {
    if (std::find(digest.keyslots.begin(), digest.keyslots.end(), keyslot) != digest.keyslots.end()) return id;
  }
  return std::nullopt;
}

std::optional<int> luks2_segment_digest(const Luks2Metadata& metadata, int segment) {
  for (const auto& [id, digest] : metadata.digests) {
    if (std::find(digest.segments.begin(), digest.segments.end(), segment) != digest.segments.end()) return id;
  }
  return std::nullopt;
}

Result<SecureBuffer> open_luks2_keyslot(RawImage& image, const Luks2Metadata& metadata, int keyslot,
                                        std::span<const uint8_t> passphrase) {
  const auto it = metadata.keyslots.find(keyslot);
  const auto digest_id = luks2_keyslot_digest(metadata, keyslot);
  if (it == metadata.keyslots.end() || !digest_id) {
    return Error(Errc::bad_key, image.name() + ": keyslot " + std::to_string(keyslot) + " is not active");
  }
  const Luks2Keyslot& ks = it->second;
  const Luks2Digest& digest = metadata.digests.at(*digest_id);
  SecureBuffer derived(ks.area_key_size);
  RL_TRY(derive_key(ks.kdf, passphrase, ks.kdf_salt, derived.span()));
  RL_ASSIGN(SecureBuffer candidate, read_key_material(image, material_layout(ks), derived.span()));
  if (!pbkdf2_digest_matches(digest.hash, digest.iterations, digest.salt, candidate.span(), digest.digest)) {
    return Error(Errc::bad_key, image.name() + ": keyslot " + std::to_string(keyslot) + " does not open");
  }
  return candidate;
}

Result<std::optional<SecureBuffer>> try_open_luks2_keyslot(RawImage& image, const Luks2Metadata& metadata, int keyslot,
                                                           std::span<const uint8_t> passphrase) {
  auto key = open_luks2_keyslot(image, metadata, keyslot, passphrase);
  if (key) return std::optional<SecureBuffer>(std::move(*key));
  if (key.error().is(Errc::bad_key)) return std::optional<SecureBuffer>();
  return std::move(key).error();
}

Status add_luks2_keyslot(Luks2Header& header, RawImage& image, int id, std::span<const uint8_t> key,
                         std::span<const uint8_t> passphrase, const KdfParams& kdf, const std::string& area_cipher,
                         std::optional<uint32_t> area_key_bytes) {
  Luks2Keyslot ks;
  ks.key_size = static_cast<uint32_t>(key.size());
  ks.af_stripes = kStripes;
  ks.af_hash = kdf.hash;
  ks.area_encryption = area_cipher;
  ks.area_key_size = area_key_bytes.value_or(static_cast<uint32_t>(key.size()));
  ks.kdf = kdf;
  ks.kdf_salt.resize(kSaltSize);
  RL_TRY(fill_random(ks.kdf_salt));
  ks.area_size = luks2_keyslot_area_size(ks.key_size, ks.af_stripes);
  RL_ASSIGN(ks.area_offset, luks2_find_free_area(header.metadata, header.hdr_size, ks.area_size));

  SecureBuffer derived(ks.area_key_size);
  RL_TRY(derive_key(ks.kdf, passphrase, ks.kdf_salt, derived.span()));
  RL_TRY(write_key_material(image, material_layout(ks), derived.span(), key));
  // Durable before any header that lists the keyslot is written: otherwise a crash could keep that
  // header but lose the material, leaving a listed keyslot that opens with nothing.
  RL_TRY(image.flush());
  header.metadata.keyslots[id] = std::move(ks);
  return {};
}

Result<Luks2Digest> new_luks2_digest(std::span<const uint8_t> key, bool minimal_cost) {
  Luks2Digest digest;
  digest.hash = "sha256";
  digest.iterations = kDigestMinIterations;
  if (!minimal_cost) {
    KdfRequest request;
    request.type = KdfType::pbkdf2;
    request.iter_time_ms = kDigestIterTimeMs;
    RL_ASSIGN(const KdfParams params, choose_kdf_params(request, key.size()));
    digest.iterations = std::max(params.iterations, kDigestMinIterations);
  }
  digest.salt.resize(kSaltSize);
  RL_TRY(fill_random(digest.salt));
  RL_ASSIGN(digest.digest, pbkdf2_digest(digest.hash, digest.iterations, digest.salt, key, 32));
  return digest;
}

Result<int> luks2_free_digest_id(const Luks2Metadata& metadata) {
  for (int id = 0; id < kLuks2MaxDigests; ++id) {
    if (!metadata.digests.contains(id)) return id;
  }
  return Error(Errc::no_space, "all " + std::to_string(kLuks2MaxDigests) + " digests are in use");
}

void luks2_tokens_add_keyslot(Luks2Metadata& metadata, int existing, int added) {
  for (auto& [token_id, token] : metadata.tokens.items()) {
    if (!token.contains("keyslots") || !token["keyslots"].is_array()) continue;
    auto& names = token["keyslots"];
    if (std::find(names.begin(), names.end(), std::to_string(existing)) != names.end()) {
      names.push_back(std::to_string(added));
    }
  }
}

void luks2_tokens_drop_keyslot(Luks2Metadata& metadata, int keyslot) {
  for (auto& [token_id, token] : metadata.tokens.items()) {
    if (token.contains("keyslots") && token["keyslots"].is_array()) {
      auto& names = token["keyslots"];
      names.erase(std::remove(names.begin(), names.end(), std::to_string(keyslot)), names.end());
    }
  }
}

std::string keyslot_list(const std::vector<int>& ids) {
  std::string out = ids.size() == 1 ? "keyslot " : "keyslots ";
  for (size_t i = 0; i < ids.size(); ++i) out += (i == 0 ? "" : ", ") + std::to_string(ids[i]);
  return out;
}

Result<int> luks2_free_keyslot_id(const Luks2Metadata& metadata) {
  for (int id = 0; id < kLuks2MaxKeyslots; ++id) {
    if (!metadata.keyslots.contains(id) && !metadata.reencrypt_keyslots.contains(id)) return id;
  }
  return Error(Errc::no_space, "all " + std::to_string(kLuks2MaxKeyslots) + " keyslots are in use");
}

}  // namespace rbdluks
