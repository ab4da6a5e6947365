// LUKS2 JSON metadata: parsing into typed values, cryptsetup's validation rules, and serialisation that
// keeps what was read.
#include "luks2_metadata.h"

#include <algorithm>
#include <exception>
#include <string_view>

#include "base64.h"
#include "kdf_cost_limits.h"
#include "luks2_binary_header.h"

namespace rbdluks {
namespace {

using Json = nlohmann::ordered_json;

// Deeper nesting than any LUKS2 header has; bounds the recursion of dump() on kept token objects.
constexpr int kMaxJsonDepth = 64;
constexpr uint64_t kSectorSize = 512;
constexpr uint64_t kAreaAlignment = 4096;
// Every LUKS2 writer (cryptsetup, librbd, rbd-luks) splits keys into 4000 stripes, as LUKS1 requires.
// cryptsetup reads any count; more stripes only make the AF merge a reader pays for longer.
constexpr uint32_t kAfStripes = 4000;
// Keys far larger than any cipher's (a 512-bit XTS key is 64 bytes); cryptsetup's LUKS1 limit.
constexpr uint32_t kMaxKeyBytes = 512;

Error bad(const std::string& message) { return Error(Errc::bad_header, message); }
Error unsupported(const std::string& message) { return Error(Errc::unsupported, message); }

// Untrusted text for a one-line message: printable ASCII only, and not too long.
std::string printable(std::string_view text, size_t limit = 64) {
  std::string out;
  for (const char c : text.substr(0, limit)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > limit) out += "...";
  return out;
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A decimal string without sign or whitespace that fits uint64 (what cryptsetup's numbered() plus
// strtoull accept).
std::optional<uint64_t> decimal_u64(std::string_view text) {
  if (!all_digits(text)) return std::nullopt;
  uint64_t v = 0;
  for (const char c : text) {
    const auto d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// An object key or reference naming keyslot/segment/digest/token `limit - 1` at most, in the canonical
// form cryptsetup looks names up by ("%u").
std::optional<int> canonical_id(std::string_view text, int limit) {
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  const auto v = decimal_u64(text);
  if (!v || *v >= static_cast<uint64_t>(limit)) return std::nullopt;
  return static_cast<int>(*v);
}

Result<int> parse_id(std::string_view text, int limit, const std::string& what) {
  const auto id = canonical_id(text, limit);
  if (!id) {
    return bad(what + " \"" + printable(text) + "\" is not a number from 0 to " + std::to_string(limit - 1));
  }
  return *id;
}

// Member access with the message saying which member of which item is wrong.
const Json* find_member(const Json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Error member_error(const std::string& where, const char* key, const char* problem) {
  return bad(where + ": \"" + key + "\" " + problem);
}

Result<const Json*> get_object(const Json& object, const char* key, const std::string& where) {
  const Json* v = find_member(object, key);
  if (v == nullptr || !v->is_object()) return member_error(where, key, "is missing or not an object");
  return v;
}

Result<std::string> get_string(const Json& object, const char* key, const std::string& where) {
  const Json* v = find_member(object, key);
  if (v == nullptr || !v->is_string()) return member_error(where, key, "is missing or not a string");
  auto text = v->get<std::string>();
  if (text.empty()) return member_error(where, key, "is empty");
  return text;
}

// uint64 values are stored as decimal strings, since JSON numbers are not exact beyond 2^53.
Result<uint64_t> get_decimal(const Json& object, const char* key, const std::string& where) {
  RL_ASSIGN(const std::string text, get_string(object, key, where));
  const auto v = decimal_u64(text);
  if (!v) return bad(where + ": \"" + key + "\" value \"" + printable(text) + "\" is not a decimal uint64");
  return *v;
}

Result<uint32_t> get_uint32(const Json& object, const char* key, const std::string& where) {
  const Json* v = find_member(object, key);
  if (v == nullptr || !v->is_number_integer()) return member_error(where, key, "is missing or not an integer");
  if (v->is_number_unsigned() ? v->get<uint64_t>() > UINT32_MAX
                              : (v->get<int64_t>() < 0 || v->get<int64_t>() > int64_t{UINT32_MAX})) {
    return bad(where + ": \"" + key + "\" " + v->dump() + " is out of the uint32 range");
  }
  return static_cast<uint32_t>(v->get<uint64_t>());
}

Result<std::vector<uint8_t>> get_base64(const Json& object, const char* key, const std::string& where) {
  RL_ASSIGN(const std::string text, get_string(object, key, where));
  auto bytes = base64_decode(text);
  if (!bytes) return member_error(where, key, "is not valid base64");
  return std::move(*bytes);
}

Result<std::vector<std::string>> get_string_array(const Json& array, const std::string& where) {
  if (!array.is_array()) return bad(where + " is not an array");
  std::vector<std::string> out;
  for (const Json& v : array) {
    if (!v.is_string()) return bad(where + " holds a value that is not a string");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::vector<std::string>> get_optional_flags(const Json& object, const std::string& where) {
  const Json* flags = find_member(object, "flags");
  if (flags == nullptr) return std::vector<std::string>{};
  return get_string_array(*flags, where + ": \"flags\"");
}

Result<std::vector<int>> get_id_array(const Json& object, const char* key, int limit, const std::string& where) {
  const Json* v = find_member(object, key);
  if (v == nullptr) return member_error(where, key, "is missing");
  RL_ASSIGN(const auto names, get_string_array(*v, where + ": \"" + key + "\""));
  std::vector<int> ids;
  for (const auto& name : names) {
    RL_ASSIGN(const int id, parse_id(name, limit, where + ": \"" + key + "\" entry"));
    ids.push_back(id);
  }
  return ids;
}

struct DepthExceeded {};

Result<Json> parse_json_area(std::span<const uint8_t> area) {
  if (area.empty() || area[0] != '{') return bad("JSON area does not start with '{'");
  const auto nul = std::find(area.begin(), area.end(), uint8_t{0});
  if (nul == area.end()) return bad("JSON text has no terminating NUL inside the JSON area");
  const auto stray = std::find_if(nul, area.end(), [](uint8_t b) { return b != 0; });
  if (stray != area.end()) {
    return bad("byte " + std::to_string(*stray) + " at offset " + std::to_string(stray - area.begin()) +
               " of the JSON area follows the JSON text");
  }
  const std::string_view text(reinterpret_cast<const char*>(area.data()), static_cast<size_t>(nul - area.begin()));
  if (text.back() != '}') return bad("JSON text does not end with '}'");

  const Json::parser_callback_t limit_depth = [](int depth, Json::parse_event_t, Json&) {
    if (depth > kMaxJsonDepth) throw DepthExceeded{};
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), limit_depth);
  } catch (const DepthExceeded&) {
    return bad("JSON text nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  } catch (const std::exception& e) {
    return bad("JSON text does not parse: " + printable(e.what(), 200));
  }
}

Result<Luks2Config> parse_config(const Json& j, std::vector<std::string>& reasons) {
  const std::string where = "config";
  Luks2Config c;
  c.json = j;
  RL_ASSIGN(c.json_size, get_decimal(j, "json_size", where));
  RL_ASSIGN(c.keyslots_size, get_decimal(j, "keyslots_size", where));
  RL_ASSIGN(c.flags, get_optional_flags(j, where));
  if (const Json* requirements = find_member(j, "requirements")) {
    if (!requirements->is_object()) return bad("config: \"requirements\" is not an object");
    if (const Json* mandatory = find_member(*requirements, "mandatory")) {
      RL_ASSIGN(const auto names, get_string_array(*mandatory, "config: requirements \"mandatory\""));
      std::string list;
      for (const auto& name : names) {
        if (name.starts_with("online-reencrypt")) {
          // The one requirement an operator meets in practice, with what to do about it.
          reasons.push_back("a reencryption of this volume has not finished (requirement " + printable(name) +
                            "): the data is partly under the old key (or none) and partly under the new one; finish "
                            "it by running the same `rbd-luks reencrypt` or `rbd-luks encrypt` again (or "
                            "`cryptsetup reencrypt --resume-only`)");
        } else {
          list += (list.empty() ? "" : ", ") + printable(name);
        }
      }
      if (!list.empty())
        reasons.push_back("the header has mandatory requirements rbd-luks does not implement: " + list);
    }
  }
  return c;
}

bool one_of(const std::string& value, std::initializer_list<std::string_view> allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

Result<Luks2ReencryptKeyslot> parse_reencrypt_keyslot(const Json& j, const std::string& where) {
  Luks2ReencryptKeyslot k;
  k.json = j;
  RL_ASSIGN(const uint32_t key_size, get_uint32(j, "key_size", where));
  if (key_size != 1) return bad(where + ": key_size of a reencrypt keyslot is " + std::to_string(key_size) + ", not 1");
  RL_ASSIGN(k.mode, get_string(j, "mode", where));
  if (!one_of(k.mode, {"reencrypt", "encrypt", "decrypt"})) {
    return bad(where + ": mode \"" + printable(k.mode) + "\" is not reencrypt, encrypt or decrypt");
  }
  RL_ASSIGN(k.direction, get_string(j, "direction", where));
  if (!one_of(k.direction, {"forward", "backward"})) {
    return bad(where + ": direction \"" + printable(k.direction) + "\" is not forward or backward");
  }
  const std::string area_where = where + " area";
  RL_ASSIGN(const Json* area, get_object(j, "area", where));
  RL_ASSIGN(k.area_type, get_string(*area, "type", area_where));
  if (!one_of(k.area_type, {"checksum", "journal", "none", "datashift", "datashift-checksum", "datashift-journal"})) {
    return bad(area_where + ": type \"" + printable(k.area_type) + "\" is not a resilience type");
  }
  RL_ASSIGN(k.area_offset, get_decimal(*area, "offset", area_where));
  RL_ASSIGN(k.area_size, get_decimal(*area, "size", area_where));
  if (k.area_type.ends_with("checksum")) {
    RL_ASSIGN(k.hash, get_string(*area, "hash", area_where));
    RL_ASSIGN(k.sector_size, get_uint32(*area, "sector_size", area_where));
    if (k.sector_size < kSectorSize || k.sector_size > 4096 || (k.sector_size & (k.sector_size - 1)) != 0) {
      return bad(area_where + ": sector_size " + std::to_string(k.sector_size) +
                 " is not a power of two from 512 to 4096");
    }
  }
  if (k.area_type.starts_with("datashift")) {
    RL_ASSIGN(k.shift_size, get_decimal(*area, "shift_size", area_where));
    if (*k.shift_size == 0 || *k.shift_size % kSectorSize != 0) {
      return bad(area_where + ": shift_size " + std::to_string(*k.shift_size) + " is not a positive multiple of 512");
    }
  }
  return k;
}

Result<Luks2Keyslot> parse_keyslot(const Json& j, const std::string& where, std::vector<std::string>& reasons) {
  RL_ASSIGN(const std::string type, get_string(j, "type", where));
  if (type != "luks2") {
    return unsupported(where + " has type \"" + printable(type) + "\", only \"luks2\" and \"reencrypt\" are supported");
  }
  Luks2Keyslot k;
  k.json = j;
  RL_ASSIGN(k.key_size, get_uint32(j, "key_size", where));

  const std::string af_where = where + " af";
  RL_ASSIGN(const Json* af, get_object(j, "af", where));
  RL_ASSIGN(const std::string af_type, get_string(*af, "type", af_where));
  if (af_type != "luks1") return bad(af_where + ": type \"" + printable(af_type) + "\" is not \"luks1\"");
  RL_ASSIGN(k.af_hash, get_string(*af, "hash", af_where));
  RL_ASSIGN(k.af_stripes, get_uint32(*af, "stripes", af_where));

  const std::string area_where = where + " area";
  RL_ASSIGN(const Json* area, get_object(j, "area", where));
  RL_ASSIGN(const std::string area_type, get_string(*area, "type", area_where));
  if (area_type != "raw") return bad(area_where + ": type \"" + printable(area_type) + "\" is not \"raw\"");
  RL_ASSIGN(k.area_offset, get_decimal(*area, "offset", area_where));
  RL_ASSIGN(k.area_size, get_decimal(*area, "size", area_where));
  RL_ASSIGN(k.area_encryption, get_string(*area, "encryption", area_where));
  RL_ASSIGN(k.area_key_size, get_uint32(*area, "key_size", area_where));

  const std::string kdf_where = where + " kdf";
  RL_ASSIGN(const Json* kdf, get_object(j, "kdf", where));
  RL_ASSIGN(const std::string kdf_type, get_string(*kdf, "type", kdf_where));
  if (auto parsed_type = parse_kdf_name(kdf_type)) {
    k.kdf.type = *parsed_type;
  } else {
    // An unknown KDF (e.g. cryptsetup 2.0's pre-release "argon2") still has costs we can bound, when
    // its members have the shape of one we know.
    reasons.push_back(kdf_where + ": type \"" + printable(kdf_type) + "\" is not supported");
    k.unknown_kdf = kdf_type;
    if (find_member(*kdf, "time") != nullptr) {
      k.kdf.type = KdfType::argon2i;
    } else if (find_member(*kdf, "iterations") != nullptr) {
      k.kdf.type = KdfType::pbkdf2;
    } else {
      return Error(Errc::unsupported, kdf_where + ": type \"" + printable(kdf_type) + "\" is not supported");
    }
  }
  if (k.kdf.type == KdfType::pbkdf2) {
    RL_ASSIGN(k.kdf.hash, get_string(*kdf, "hash", kdf_where));
    RL_ASSIGN(k.kdf.iterations, get_uint32(*kdf, "iterations", kdf_where));
  } else {
    RL_ASSIGN(k.kdf.iterations, get_uint32(*kdf, "time", kdf_where));
    RL_ASSIGN(k.kdf.memory_kib, get_uint32(*kdf, "memory", kdf_where));
    RL_ASSIGN(k.kdf.parallel, get_uint32(*kdf, "cpus", kdf_where));
  }
  RL_ASSIGN(k.kdf_salt, get_base64(*kdf, "salt", kdf_where));

  if (find_member(j, "priority") != nullptr) {
    RL_ASSIGN(const uint32_t priority, get_uint32(j, "priority", where));
    if (priority > static_cast<uint32_t>(Luks2Priority::prefer)) {
      return bad(where + ": priority " + std::to_string(priority) + " is not 0, 1 or 2");
    }
    k.priority = static_cast<Luks2Priority>(priority);
  }
  return k;
}

Result<Luks2Segment> parse_segment(const Json& j, const std::string& where, std::vector<std::string>& reasons) {
  if (!j.is_object()) return bad(where + " is not an object");
  Luks2Segment s;
  s.json = j;
  RL_ASSIGN(const std::string type, get_string(j, "type", where));
  RL_ASSIGN(s.offset, get_decimal(j, "offset", where));
  RL_ASSIGN(const std::string size, get_string(j, "size", where));
  if (size != "dynamic") {
    const auto v = decimal_u64(size);
    if (!v || *v == 0)
      return bad(where + ": size \"" + printable(size) + "\" is neither \"dynamic\" nor a positive number");
    s.size = *v;
  }
  RL_ASSIGN(s.flags, get_optional_flags(j, where));
  for (const auto& flag : s.flags) {
    if (flag.starts_with("backup-") || flag == "in-reencryption") {
      reasons.push_back(where + " has flag \"" + printable(flag) + "\": reencryption is not supported");
    }
  }
  if (type != "crypt") {
    reasons.push_back(where + " has type \"" + printable(type) + "\", only \"crypt\" is supported");
    s.unknown_type = type;
    return s;
  }
  RL_ASSIGN(s.iv_tweak, get_decimal(j, "iv_tweak", where));
  // dm-crypt adds iv_tweak to every sector's IV when cryptsetup activates the volume, but
  // cryptsetup's own offline reencryption reads the segment as if it were 0 (docs/design.md): the
  // data of such a volume has no single meaning, so it is refused rather than read one way.
  if (s.iv_tweak != 0) {
    reasons.push_back(where + " has iv_tweak " + std::to_string(s.iv_tweak) +
                      ": volumes with an IV offset are not supported");
  }
  RL_ASSIGN(s.encryption, get_string(j, "encryption", where));
  RL_ASSIGN(s.sector_size, get_uint32(j, "sector_size", where));
  if (find_member(j, "integrity") != nullptr) reasons.push_back(where + " has integrity protection");
  return s;
}

Result<Luks2Digest> parse_digest(const Json& j, const std::string& where) {
  if (!j.is_object()) return bad(where + " is not an object");
  Luks2Digest d;
  d.json = j;
  RL_ASSIGN(const std::string type, get_string(j, "type", where));
  RL_ASSIGN(d.keyslots, get_id_array(j, "keyslots", kLuks2MaxKeyslots, where));
  RL_ASSIGN(d.segments, get_id_array(j, "segments", kLuks2MaxSegments, where));
  if (type != "pbkdf2")
    return unsupported(where + " has type \"" + printable(type) + "\", only \"pbkdf2\" is supported");
  RL_ASSIGN(d.hash, get_string(j, "hash", where));
  RL_ASSIGN(d.iterations, get_uint32(j, "iterations", where));
  RL_ASSIGN(d.salt, get_base64(j, "salt", where));
  RL_ASSIGN(d.digest, get_base64(j, "digest", where));
  return d;
}

// Parses every member of a section object into items keyed by id.
template <typename T, typename Parse>
Status parse_section(const Json& section, int limit, const char* what, Parse parse, std::map<int, T>& out) {
  for (auto it = section.begin(); it != section.end(); ++it) {
    RL_ASSIGN(const int id, parse_id(it.key(), limit, what));
    RL_ASSIGN(out[id], parse(it.value(), std::string(what) + " " + it.key()));
  }
  return {};
}

bool contains(const std::vector<int>& ids, int id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); }

bool overlap(uint64_t a_offset, uint64_t a_end, uint64_t b_offset, uint64_t b_end) {
  return a_offset < b_end && b_offset < a_end;
}

Status validate_config(const Luks2Config& c, uint64_t hdr_size) {
  if (c.json_size != hdr_size - kLuks2BinaryHeaderSize) {
    return bad("config: json_size " + std::to_string(c.json_size) + " does not match the header size " +
               std::to_string(hdr_size) + " (expected " + std::to_string(hdr_size - kLuks2BinaryHeaderSize) + ")");
  }
  if (c.keyslots_size % kAreaAlignment != 0 || c.keyslots_size > kLuks2MaxKeyslotsSize) {
    return bad("config: keyslots_size " + std::to_string(c.keyslots_size) + " is not a multiple of 4096 up to 128 MiB");
  }
  return {};
}

// A reencryption's copies of the old and new segment (flags "backup-previous", "backup-final",
// "backup-moved-segment"): they describe the volume before and after, not a part of it now.
bool is_backup(const Luks2Segment& s) {
  return std::any_of(s.flags.begin(), s.flags.end(), [](const std::string& f) { return f.starts_with("backup-"); });
}

Status validate_segments(const Luks2Metadata& m, uint64_t keyslots_end) {
  if (m.segments.empty()) return bad("there is no data segment");
  // As cryptsetup's hdr_validate_segments: backup segments follow all the others.
  std::optional<int> last_regular;
  for (const auto& [id, s] : m.segments) {
    if (is_backup(s)) continue;
    if (last_regular && *last_regular != id - 1) {
      return bad("segment " + std::to_string(id) + " follows a backup segment");
    }
    last_regular = id;
  }
  if (!last_regular) return bad("there is no data segment, only backup segments");
  int expected_id = 0;
  for (const auto& [id, s] : m.segments) {
    const std::string where = "segment " + std::to_string(id);
    if (id >= kLuks2MaxSegments) return bad(where + " is out of the range 0 to 31");
    if (id != expected_id) return bad("segment " + std::to_string(expected_id) + " is missing before " + where);
    ++expected_id;
    // What the sector size and cipher must be is the "crypt" type's rule; other types keep theirs.
    const uint32_t sector_size = s.unknown_type ? kSectorSize : s.sector_size;
    if (!s.unknown_type) {
      if (s.sector_size == 0 || s.sector_size % kSectorSize != 0) {
        return bad(where + ": sector_size " + std::to_string(s.sector_size) + " is not a multiple of 512");
      }
      if (s.sector_size > 4096 || (s.sector_size & (s.sector_size - 1)) != 0) {
        return unsupported(where + ": sector_size " + std::to_string(s.sector_size) +
                           " is not a power of two from 512 to 4096");
      }
    }
    if (s.offset % kSectorSize != 0) {
      return bad(where + ": offset " + std::to_string(s.offset) + " is not a multiple of 512");
    }
    if (s.size) {
      if (*s.size == 0 || *s.size % sector_size != 0) {
        return bad(where + ": size " + std::to_string(*s.size) + " is not a positive multiple of sector_size " +
                   std::to_string(sector_size));
      }
    } else if (!is_backup(s) && id != *last_regular) {
      return bad(where + " has size \"dynamic\" but is not the last segment");
    }
    if (!s.unknown_type && s.encryption.empty()) return bad(where + ": encryption is empty");
    // cryptsetup accepts sizes up to UINT64_MAX; the end saturates instead of wrapping.
    const auto end_of = [](const Luks2Segment& seg) {
      return seg.size && *seg.size <= UINT64_MAX - seg.offset ? seg.offset + *seg.size : UINT64_MAX;
    };
    const uint64_t end = end_of(s);
    for (const auto& [other_id, other] : m.segments) {
      const uint64_t other_end = end_of(other);
      if (other_id != id && !is_backup(s) && !is_backup(other) && overlap(s.offset, end, other.offset, other_end)) {
        return bad(where + " overlaps segment " + std::to_string(other_id));
      }
    }
    const bool has_digest = std::any_of(m.digests.begin(), m.digests.end(),
                                        [id = id](const auto& d) { return contains(d.second.segments, id); });
    if (!has_digest && !s.unknown_type) return bad(where + " is not assigned to any digest");
  }

  // Backups describe the volume before and after a reencryption: an encryption's old segment is
  // the plaintext at offset 0.
  uint64_t first_offset = UINT64_MAX;
  for (const auto& entry : m.segments) {
    if (!is_backup(entry.second)) first_offset = std::min(first_offset, entry.second.offset);
  }
  if (first_offset == 0) {
    return unsupported(
        "the data segment starts at offset 0, i.e. the header is detached; "
        "detached LUKS2 headers are not supported");
  }
  if (first_offset < keyslots_end) {
    return bad("data segment offset " + std::to_string(first_offset) +
               " is inside the header and keyslots area, which ends at " + std::to_string(keyslots_end));
  }
  return {};
}

// A keyslot's area lies inside the keyslots area and overlaps no other luks2 keyslot's.
Status check_area(const Luks2Metadata& m, int id, uint64_t offset, uint64_t size, uint64_t keyslots_begin,
                  uint64_t keyslots_end) {
  const std::string where = "keyslot " + std::to_string(id);
  if (offset < keyslots_begin || offset > UINT64_MAX - size || offset + size > keyslots_end) {
    return bad(where + ": area [" + std::to_string(offset) + ", +" + std::to_string(size) +
               ") is outside the keyslots area [" + std::to_string(keyslots_begin) + ", " +
               std::to_string(keyslots_end) + ")");
  }
  for (const auto& [other_id, other] : m.keyslots) {
    if (other_id != id && overlap(offset, offset + size, other.area_offset, other.area_offset + other.area_size)) {
      return bad(where + ": area overlaps the area of keyslot " + std::to_string(other_id));
    }
  }
  return {};
}

Status validate_keyslots(const Luks2Metadata& m, uint64_t keyslots_begin, uint64_t keyslots_end) {
  for (const auto& [id, k] : m.keyslots) {
    const std::string where = "keyslot " + std::to_string(id);
    if (id < 0 || id >= kLuks2MaxKeyslots) return bad(where + " is out of the range 0 to 31");
    if (k.key_size == 0 || k.area_key_size == 0) return bad(where + ": key_size is 0");
    if (k.key_size > kMaxKeyBytes || k.area_key_size > kMaxKeyBytes) {
      return bad(where + ": key size " + std::to_string(std::max(k.key_size, k.area_key_size)) +
                 " bytes is larger than any cipher's (limit " + std::to_string(kMaxKeyBytes) + ")");
    }
    if (k.af_stripes != kAfStripes) {
      return bad(where + ": " + std::to_string(k.af_stripes) + " AF stripes, LUKS2 writers use " +
                 std::to_string(kAfStripes));
    }
    if (uint64_t{k.key_size} * k.af_stripes > k.area_size) {
      return bad(where + ": the " + std::to_string(uint64_t{k.key_size} * k.af_stripes) +
                 " bytes of split key material do not fit its " + std::to_string(k.area_size) + "-byte area");
    }
    if (k.kdf.iterations == 0) return bad(where + ": kdf iterations/time is 0");
    if (k.kdf.type != KdfType::pbkdf2 && (k.kdf.memory_kib == 0 || k.kdf.parallel == 0)) {
      return bad(where + ": kdf memory or cpus is 0");
    }
    RL_TRY(check_kdf_cost(k.kdf, where + " kdf"));
    if (k.area_encryption.empty()) return bad(where + ": area encryption is empty");
    if (k.area_size == 0) return bad(where + ": area size is 0");
    RL_TRY(check_area(m, id, k.area_offset, k.area_size, keyslots_begin, keyslots_end));
    const bool has_digest = std::any_of(m.digests.begin(), m.digests.end(),
                                        [id = id](const auto& d) { return contains(d.second.keyslots, id); });
    if (!has_digest) return bad(where + " is not assigned to any digest");
  }
  if (m.reencrypt_keyslots.size() > 1) return bad("more than one keyslot has type \"reencrypt\"");
  for (const auto& [id, k] : m.reencrypt_keyslots) {
    const std::string where = "keyslot " + std::to_string(id);
    if (id < 0 || id >= kLuks2MaxKeyslots) return bad(where + " is out of the range 0 to 31");
    if (m.keyslots.contains(id)) return bad(where + " is both a luks2 and a reencrypt keyslot");
    // cryptsetup's "none" and datashift types may have an empty area; any area must fit.
    RL_TRY(check_area(m, id, k.area_offset, k.area_size, keyslots_begin, keyslots_end));
    const bool has_digest = std::any_of(m.digests.begin(), m.digests.end(),
                                        [id = id](const auto& d) { return contains(d.second.keyslots, id); });
    if (!has_digest) return bad(where + " is not assigned to any digest");
  }
  // A wrong passphrase tries every keyslot, so their costs add up.
  double total = 0;
  for (const auto& entry : m.keyslots) total += kdf_cost_in_limits(entry.second.kdf);
  if (total > kMaxKeyslotsCostInLimits) {
    return bad("the keyslots' KDFs together cost " + std::to_string(total) + " times the limit for one, more than " +
               std::to_string(static_cast<int>(kMaxKeyslotsCostInLimits)) + " (a hostile header?)");
  }
  return {};
}

Status validate_digests(const Luks2Metadata& m) {
  // The LUKS2 format gives each keyslot one digest: with two, which key the slot holds would depend on
  // which digest a reader tries first.
  std::map<int, int> digest_of_keyslot;
  for (const auto& [id, d] : m.digests) {
    for (const int keyslot : d.keyslots) {
      if (const auto [it, inserted] = digest_of_keyslot.emplace(keyslot, id); !inserted) {
        return bad("keyslot " + std::to_string(keyslot) + " is assigned to digests " + std::to_string(it->second) +
                   " and " + std::to_string(id));
      }
    }
  }
  for (const auto& [id, d] : m.digests) {
    const std::string where = "digest " + std::to_string(id);
    if (id < 0 || id >= kLuks2MaxDigests) return bad(where + " is out of the range 0 to 7");
    if (d.iterations == 0) return bad(where + ": iterations is 0");
    RL_TRY(check_pbkdf2_cost(d.iterations, where));
    if (d.digest.empty()) return bad(where + ": digest is empty");
    std::optional<uint32_t> key_size;
    for (const int keyslot : d.keyslots) {
      if (m.reencrypt_keyslots.contains(keyslot)) continue;  // it holds no key
      const auto it = m.keyslots.find(keyslot);
      if (it == m.keyslots.end()) return bad(where + " refers to missing keyslot " + std::to_string(keyslot));
      // A keyslot of priority "ignore" is never tried unless named, and one whose key has another
      // size never matches the digest: such a slot is how a reencryption fences librbd out.
      if (it->second.priority == Luks2Priority::ignore) continue;
      if (key_size && *key_size != it->second.key_size) {
        return bad(where + ": its keyslots hold volume keys of different sizes");
      }
      key_size = it->second.key_size;
    }
    for (const int segment : d.segments) {
      if (!m.segments.contains(segment)) return bad(where + " refers to missing segment " + std::to_string(segment));
    }
  }
  return {};
}

Status validate_tokens(const Luks2Metadata& m) {
  if (!m.tokens.is_object()) return bad("tokens is not an object");
  for (auto it = m.tokens.begin(); it != m.tokens.end(); ++it) {
    RL_ASSIGN(const int id, parse_id(it.key(), kLuks2MaxTokens, "token"));
    const std::string where = "token " + std::to_string(id);
    if (!it.value().is_object()) return bad(where + " is not an object");
    RL_TRY(get_string(it.value(), "type", where));
    RL_ASSIGN(const auto keyslots, get_id_array(it.value(), "keyslots", kLuks2MaxKeyslots, where));
    for (const int keyslot : keyslots) {
      if (!m.keyslots.contains(keyslot) && !m.reencrypt_keyslots.contains(keyslot)) {
        return bad(where + " refers to missing keyslot " + std::to_string(keyslot));
      }
    }
  }
  return {};
}

// The object an item was read from, or a new one.
Json base_object(const Json& json) { return json.is_object() ? json : Json::object(); }

Json member_base(const Json& object, const char* key) {
  const Json* v = find_member(object, key);
  return v != nullptr ? base_object(*v) : Json::object();
}

Json ids_to_json(const std::vector<int>& ids) {
  Json out = Json::array();
  for (const int id : ids) out.push_back(std::to_string(id));
  return out;
}

void set_flags(Json& j, const std::vector<std::string>& flags) {
  if (!flags.empty() || j.contains("flags")) j["flags"] = flags;
}

Json keyslot_to_json(const Luks2Keyslot& k) {
  Json j = base_object(k.json);
  j["type"] = "luks2";
  j["key_size"] = k.key_size;

  Json af = member_base(j, "af");
  af["type"] = "luks1";
  af["stripes"] = k.af_stripes;
  af["hash"] = k.af_hash;
  j["af"] = std::move(af);

  Json area = member_base(j, "area");
  area["type"] = "raw";
  area["offset"] = std::to_string(k.area_offset);
  area["size"] = std::to_string(k.area_size);
  area["encryption"] = k.area_encryption;
  area["key_size"] = k.area_key_size;
  j["area"] = std::move(area);

  // A kdf of another type is replaced whole, as cryptsetup does, so no stale cost members remain.
  const std::string kdf_type(kdf_name(k.kdf.type));
  Json kdf = member_base(j, "kdf");
  if (const Json* old_type = find_member(kdf, "type"); old_type == nullptr || *old_type != kdf_type) {
    kdf = Json::object();
  }
  kdf["type"] = kdf_type;
  if (k.kdf.type == KdfType::pbkdf2) {
    kdf["hash"] = k.kdf.hash;
    kdf["iterations"] = k.kdf.iterations;
  } else {
    kdf["time"] = k.kdf.iterations;
    kdf["memory"] = k.kdf.memory_kib;
    kdf["cpus"] = k.kdf.parallel;
  }
  kdf["salt"] = base64_encode(k.kdf_salt);
  j["kdf"] = std::move(kdf);

  if (k.priority) {
    j["priority"] = static_cast<int>(*k.priority);
  } else {
    j.erase("priority");
  }
  return j;
}

Json reencrypt_keyslot_to_json(const Luks2ReencryptKeyslot& k) {
  // A new one in the member order cryptsetup 2.6 writes.
  Json j = base_object(k.json);
  Json area = member_base(j, "area");
  area["offset"] = std::to_string(k.area_offset);
  area["size"] = std::to_string(k.area_size);
  area["type"] = k.area_type;
  if (k.area_type.ends_with("checksum")) {
    area["hash"] = k.hash;
    area["sector_size"] = k.sector_size;
  }
  if (k.shift_size) area["shift_size"] = std::to_string(*k.shift_size);
  j["area"] = std::move(area);
  j["type"] = "reencrypt";
  j["key_size"] = 1;
  j["mode"] = k.mode;
  j["direction"] = k.direction;
  if (!j.contains("priority")) j["priority"] = 0;
  return j;
}

Json segment_to_json(const Luks2Segment& s) {
  Json j = base_object(s.json);
  j["type"] = s.unknown_type.value_or("crypt");
  j["offset"] = std::to_string(s.offset);
  j["size"] = s.size ? std::to_string(*s.size) : "dynamic";
  if (s.unknown_type) {  // e.g. "linear", the plaintext part of an encryption or decryption
    set_flags(j, s.flags);
    return j;
  }
  j["iv_tweak"] = std::to_string(s.iv_tweak);
  j["encryption"] = s.encryption;
  j["sector_size"] = s.sector_size;
  set_flags(j, s.flags);
  return j;
}

Json digest_to_json(const Luks2Digest& d) {
  Json j = base_object(d.json);
  j["type"] = "pbkdf2";
  j["keyslots"] = ids_to_json(d.keyslots);
  j["segments"] = ids_to_json(d.segments);
  j["hash"] = d.hash;
  j["iterations"] = d.iterations;
  j["salt"] = base64_encode(d.salt);
  j["digest"] = base64_encode(d.digest);
  return j;
}

Json config_to_json(const Luks2Config& c) {
  Json j = base_object(c.json);
  j["json_size"] = std::to_string(c.json_size);
  j["keyslots_size"] = std::to_string(c.keyslots_size);
  set_flags(j, c.flags);
  return j;
}

// Items that were read keep their place in the section; new ones follow in id order.
template <typename T, typename ToJson>
Json section_to_json(const Json& root, const char* name, const std::map<int, T>& items, ToJson to_json) {
  Json out = Json::object();
  if (const Json* old = find_member(root, name); old != nullptr && old->is_object()) {
    for (auto it = old->begin(); it != old->end(); ++it) {
      const auto id = canonical_id(it.key(), INT32_MAX);
      if (id && items.contains(*id)) out[it.key()] = to_json(items.at(*id));
    }
  }
  for (const auto& [id, item] : items) {
    const std::string key = std::to_string(id);
    if (!out.contains(key)) out[key] = to_json(item);
  }
  return out;
}

}  // namespace

Result<Luks2Metadata> parse_luks2_metadata(std::span<const uint8_t> json_area, uint64_t hdr_size) {
  if (!luks2_hdr_size_valid(hdr_size)) return bad("invalid header size " + std::to_string(hdr_size));
  if (json_area.size() != hdr_size - kLuks2BinaryHeaderSize) {
    return bad("JSON area is " + std::to_string(json_area.size()) + " bytes, expected " +
               std::to_string(hdr_size - kLuks2BinaryHeaderSize));
  }
  Luks2Metadata m;
  RL_ASSIGN(m.json, parse_json_area(json_area));
  const std::string where = "JSON metadata";
  RL_ASSIGN(const Json* keyslots, get_object(m.json, "keyslots", where));
  RL_ASSIGN(const Json* tokens, get_object(m.json, "tokens", where));
  RL_ASSIGN(const Json* segments, get_object(m.json, "segments", where));
  RL_ASSIGN(const Json* digests, get_object(m.json, "digests", where));
  RL_ASSIGN(const Json* config, get_object(m.json, "config", where));

  RL_ASSIGN(m.config, parse_config(*config, m.unsupported));
  const auto keyslot = [&](const Json& j, const std::string& at) { return parse_keyslot(j, at, m.unsupported); };
  const auto segment = [&](const Json& j, const std::string& at) { return parse_segment(j, at, m.unsupported); };
  for (auto it = keyslots->begin(); it != keyslots->end(); ++it) {
    RL_ASSIGN(const int id, parse_id(it.key(), kLuks2MaxKeyslots, "keyslot"));
    const std::string at = "keyslot " + it.key();
    if (!it.value().is_object()) return bad(at + " is not an object");
    if (const Json* type = find_member(it.value(), "type"); type != nullptr && *type == "reencrypt") {
      RL_ASSIGN(m.reencrypt_keyslots[id], parse_reencrypt_keyslot(it.value(), at));
    } else {
      RL_ASSIGN(m.keyslots[id], keyslot(it.value(), at));
    }
  }
  RL_TRY(parse_section(*segments, kLuks2MaxSegments, "segment", segment, m.segments));
  RL_TRY(parse_section(*digests, kLuks2MaxDigests, "digest", parse_digest, m.digests));
  // Several segments map parts of the data differently (what reencryption leaves); rbd-luks reads one.
  if (m.segments.size() > 1) {
    m.unsupported.push_back(std::to_string(m.segments.size()) + " data segments, only one is supported");
  }
  // An unfinished reencryption explains its segments, flags and IV offsets; other requirements stay.
  if (std::any_of(m.unsupported.begin(), m.unsupported.end(),
                  [](const std::string& r) { return r.starts_with("a reencryption"); })) {
    std::erase_if(m.unsupported, [](const std::string& r) {
      return !r.starts_with("a reencryption") && !r.starts_with("the header has mandatory requirements");
    });
  }
  m.tokens = *tokens;
  RL_TRY(validate_luks2_metadata(m, hdr_size));
  return m;
}

Status validate_luks2_metadata(const Luks2Metadata& m, uint64_t hdr_size) {
  if (!luks2_hdr_size_valid(hdr_size)) return bad("invalid header size " + std::to_string(hdr_size));
  RL_TRY(validate_config(m.config, hdr_size));
  const uint64_t keyslots_begin = 2 * hdr_size;
  const uint64_t keyslots_end = keyslots_begin + m.config.keyslots_size;
  RL_TRY(validate_segments(m, keyslots_end));
  RL_TRY(validate_keyslots(m, keyslots_begin, keyslots_end));
  RL_TRY(validate_digests(m));
  RL_TRY(validate_tokens(m));
  RL_TRY(luks2_json_area(m));  // the text must fit
  return {};
}

nlohmann::ordered_json luks2_metadata_to_json(const Luks2Metadata& m) {
  Json root = base_object(m.json);
  std::map<int, Json> keyslots;
  for (const auto& [id, k] : m.keyslots) keyslots[id] = keyslot_to_json(k);
  for (const auto& [id, k] : m.reencrypt_keyslots) keyslots[id] = reencrypt_keyslot_to_json(k);
  root["keyslots"] = section_to_json(root, "keyslots", keyslots, [](const Json& j) { return j; });
  root["tokens"] = m.tokens;
  root["segments"] = section_to_json(root, "segments", m.segments, segment_to_json);
  root["digests"] = section_to_json(root, "digests", m.digests, digest_to_json);
  root["config"] = config_to_json(m.config);
  return root;
}

Result<std::string> luks2_metadata_text(const Luks2Metadata& metadata) {
  try {
    return luks2_metadata_to_json(metadata).dump();
  } catch (const std::exception& e) {
    return Error(Errc::failure, std::string("cannot write LUKS2 JSON metadata: ") + e.what());
  }
}

Result<std::vector<uint8_t>> luks2_json_area(const Luks2Metadata& metadata) {
  RL_ASSIGN(const std::string text, luks2_metadata_text(metadata));
  // Room for the terminating NUL is needed: readers find the end of the text by it.
  if (text.size() >= metadata.config.json_size) {
    return Error(Errc::no_space, "JSON metadata of " + std::to_string(text.size()) + " bytes does not fit the " +
                                     std::to_string(metadata.config.json_size) + "-byte JSON area");
  }
  std::vector<uint8_t> area(metadata.config.json_size, 0);
  std::copy(text.begin(), text.end(), area.begin());
  return area;
}

}  // namespace rbdluks
