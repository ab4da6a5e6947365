// The LUKS2 JSON area as typed values: keyslots, segments, digests, config, and tokens kept verbatim.
//
// Parsing applies the checks of cryptsetup's LUKS2_hdr_validate (and its luks2 keyslot validator) and
// fails with Errc::bad_header saying which rule broke where. Valid LUKS2 that uses features rbd-luks
// does not implement is parsed and validated all the same, with the reasons in
// Luks2Metadata::unsupported (a KDF other than pbkdf2/argon2i/argon2id, mandatory requirements, an
// IV offset, reencryption flags, integrity), so it can be shown but not opened; only what cannot be
// modelled at all (other keyslot, segment or digest types, detached headers) fails with
// Errc::unsupported. The state of a reencryption (its keyslot, several segments, backup segments)
// is modelled, for the reencryption code (common/reencrypt) to resume it.
//
// Each item remembers the JSON object it was read from, so members we do not model are written back
// unchanged and in their original order; new items are written in cryptsetup's member order, in the
// compact text json-c produces (no whitespace).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kdf.h"
#include "result.h"

namespace rbdluks {

// Limits on the numeric object keys, as in cryptsetup (LUKS2_KEYSLOTS_MAX, LUKS2_DIGEST_MAX, ...).
inline constexpr int kLuks2MaxKeyslots = 32;
inline constexpr int kLuks2MaxSegments = 32;
inline constexpr int kLuks2MaxDigests = 8;
inline constexpr int kLuks2MaxTokens = 32;
inline constexpr uint64_t kLuks2MaxKeyslotsSize = 0x8000000;  // 128 MiB

// Keyslot priority as cryptsetup stores it ("priority" absent means normal).
enum class Luks2Priority { ignore = 0, normal = 1, prefer = 2 };

// A keyslot of type "luks2": the volume key, AF-split ("af" type "luks1") and encrypted in a "raw"
// area of the keyslots area under a key derived from a passphrase.
struct Luks2Keyslot {
  uint32_t key_size = 64;  // volume key bytes
  // af
  uint32_t af_stripes = 4000;
  std::string af_hash = "sha256";
  // area
  uint64_t area_offset = 0;  // bytes from the image start
  uint64_t area_size = 0;
  std::string area_encryption = "aes-xts-plain64";
  uint32_t area_key_size = 64;  // bytes of the area cipher key, the KDF output
  // kdf
  KdfParams kdf;  // for a KDF type we do not implement: its stored costs, in the shape of its members
  std::optional<std::string> unknown_kdf;  // the stored KDF type when rbd-luks does not implement it
  std::vector<uint8_t> kdf_salt;
  std::optional<Luks2Priority> priority;

  nlohmann::ordered_json json = nlohmann::ordered_json::object();  // the object as read
};

// The keyslot of type "reencrypt" that a reencryption keeps while it runs or after it was
// interrupted (cryptsetup's luks2_keyslot_reenc.c): no key, but how the data is being rewritten and
// where the data that protects the sectors being rewritten (the hotzone) lives. At most one.
struct Luks2ReencryptKeyslot {
  std::string mode = "reencrypt";      // "reencrypt", "encrypt" or "decrypt"
  std::string direction = "forward";   // "forward" or "backward"
  std::string area_type = "checksum";  // checksum, journal, none, datashift, datashift-checksum, datashift-journal
  uint64_t area_offset = 0;            // bytes from the image start, inside the keyslots area
  uint64_t area_size = 0;
  std::string hash;                    // checksum types: the hash of each hotzone sector
  uint32_t sector_size = 0;            // checksum types: the unit that is hashed
  std::optional<uint64_t> shift_size;  // datashift types: how far the data moves

  nlohmann::ordered_json json = nlohmann::ordered_json::object();
};

// A data segment of type "crypt".
struct Luks2Segment {
  uint64_t offset = 0;           // bytes from the image start
  std::optional<uint64_t> size;  // std::nullopt: "dynamic", up to the end of the image
  uint64_t iv_tweak = 0;         // dm-crypt's iv_offset: added to every sector's tweak, in 512-byte units
  std::string encryption = "aes-xts-plain64";
  uint32_t sector_size = 4096;
  std::vector<std::string> flags;
  // The stored type when it is not "crypt" (e.g. reencryption's "linear"): only offset, size and
  // flags are then read, and the volume cannot be opened.
  std::optional<std::string> unknown_type;

  nlohmann::ordered_json json = nlohmann::ordered_json::object();
};

// A volume key digest of type "pbkdf2": PBKDF2(hash, volume key, salt, iterations) == digest.
struct Luks2Digest {
  std::vector<int> keyslots;
  std::vector<int> segments;
  std::string hash = "sha256";
  uint32_t iterations = 1000;
  std::vector<uint8_t> salt;
  std::vector<uint8_t> digest;

  nlohmann::ordered_json json = nlohmann::ordered_json::object();
};

struct Luks2Config {
  uint64_t json_size = 0;          // hdr_size - 4096
  uint64_t keyslots_size = 0;      // bytes of the keyslots area, which starts at 2 * hdr_size
  std::vector<std::string> flags;  // persistent activation flags, e.g. "allow-discards"

  nlohmann::ordered_json json = nlohmann::ordered_json::object();  // also holds "requirements"
};

struct Luks2Metadata {
  std::map<int, Luks2Keyslot> keyslots;                     // type "luks2": the ones that hold keys
  std::map<int, Luks2ReencryptKeyslot> reencrypt_keyslots;  // type "reencrypt"; ids differ from keyslots'
  std::map<int, Luks2Segment> segments;
  std::map<int, Luks2Digest> digests;
  nlohmann::ordered_json tokens = nlohmann::ordered_json::object();  // verbatim: {"0": {...}}
  Luks2Config config;
  std::vector<std::string> unsupported;  // why a valid header cannot be opened; empty when it can

  nlohmann::ordered_json json = nlohmann::ordered_json::object();  // the top-level object as read
};

// Parses and validates the JSON area of a header copy (all hdr_size - 4096 bytes: the text, then only
// NULs).
Result<Luks2Metadata> parse_luks2_metadata(std::span<const uint8_t> json_area, uint64_t hdr_size);

// The consistency rules of cryptsetup's LUKS2_hdr_validate on the typed values: sizes, key ranges,
// keyslot areas inside the keyslots area and disjoint, segments after it and disjoint, references
// between digests, keyslots, segments and tokens, and the text fitting json_size.
Status validate_luks2_metadata(const Luks2Metadata& metadata, uint64_t hdr_size);

nlohmann::ordered_json luks2_metadata_to_json(const Luks2Metadata& metadata);

// The compact JSON text, as cryptsetup writes it.
Result<std::string> luks2_metadata_text(const Luks2Metadata& metadata);

// The JSON area to store: the text padded with NULs to config.json_size bytes. Errc::no_space when the
// text (and its terminating NUL) does not fit.
Result<std::vector<uint8_t>> luks2_json_area(const Luks2Metadata& metadata);

}  // namespace rbdluks
