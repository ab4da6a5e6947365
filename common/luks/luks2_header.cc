// LUKS2 header I/O: both copies read with every bound checked against the image size before any read,
// the current copy chosen by seqid, and the copies rewritten one at a time so a crash leaves one valid.
#include "luks2_header.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "alignment.h"
#include "random.h"

namespace rbdluks {
namespace {

// Where cryptsetup looks for the secondary copy when the primary does not tell (LUKS2_HDR2_OFFSETS).
constexpr uint64_t kSecondaryOffsets[] = {0x4000,  0x8000,   0x10000,  0x20000, 0x40000,
                                          0x80000, 0x100000, 0x200000, 0x400000};
constexpr uint64_t kAreaAlignment = 4096;
// Where the binary header keeps its UUID (luks2_binary_header.h), read even from a damaged copy.
constexpr size_t kUuidOffset = 168;
constexpr size_t kUuidSize = 40;

Error bad(const std::string& message) { return Error(Errc::bad_header, message); }

// One header copy as found on the image.
struct Copy {
  uint64_t offset = 0;
  bool magic = false;                       // the copy's magic is there
  bool blank = false;                       // its binary header is all zeros (wiped)
  std::string uuid_field;                   // the bytes where the UUID belongs, up to the first NUL
  std::optional<Luks2BinaryHeader> binary;  // the binary header and checksum are good
  std::optional<Luks2Metadata> metadata;    // and so is the JSON metadata, which we support
  std::optional<Error> error;               // why metadata is not set

  // A copy that takes part in choosing by seqid: valid, or valid but using a feature we lack.
  bool usable() const { return metadata || (binary && error && error->is(Errc::unsupported)); }

  std::string describe(const char* which) const {
    return std::string(which) + " copy at offset " + std::to_string(offset) + ": " + (error ? error->message() : "");
  }
};

// Reads and checks the copy at offset. The Result fails only on I/O errors; a bad copy is a Copy with
// error set.
Result<Copy> read_copy(RawImage& image, uint64_t image_size, uint64_t offset) {
  Copy copy;
  copy.offset = offset;
  if (image_size < offset || image_size - offset < kLuks2BinaryHeaderSize) {
    copy.error = bad("the image ends at " + std::to_string(image_size) + ", before the end of the binary header");
    return copy;
  }
  std::vector<uint8_t> buffer(kLuks2BinaryHeaderSize);
  RL_TRY(image.read(offset, buffer));
  copy.magic = luks2_magic(buffer) != Luks2Magic::none;
  copy.blank = std::all_of(buffer.begin(), buffer.end(), [](uint8_t b) { return b == 0; });
  const auto uuid = std::span(buffer).subspan(kUuidOffset, kUuidSize);
  copy.uuid_field.assign(uuid.begin(), std::find(uuid.begin(), uuid.end(), uint8_t{0}));
  auto binary = parse_luks2_binary_header(buffer, offset);
  if (!binary) {
    copy.error = std::move(binary).error();
    return copy;
  }
  const uint64_t hdr_size = binary->hdr_size;
  if (image_size - offset < hdr_size) {
    copy.error = bad("the image ends at " + std::to_string(image_size) + ", inside this " + std::to_string(hdr_size) +
                     "-byte header copy");
    return copy;
  }
  buffer.resize(hdr_size);
  const std::span<uint8_t> json_area = std::span(buffer).subspan(kLuks2BinaryHeaderSize);
  RL_TRY(image.read(offset + kLuks2BinaryHeaderSize, json_area));
  if (auto checked = verify_luks2_checksum(*binary, std::span(buffer).first(kLuks2BinaryHeaderSize), json_area);
      !checked) {
    if (checked.error().is(Errc::unsupported)) copy.binary = *binary;
    copy.error = std::move(checked).error();
    return copy;
  }
  copy.binary = *binary;
  auto metadata = parse_luks2_metadata(json_area, hdr_size);
  if (!metadata) {
    copy.error = std::move(metadata).error();
    return copy;
  }
  copy.metadata = std::move(metadata).value();
  return copy;
}

// The secondary copy when the primary does not give its offset: the first known offset holding a copy
// with a good binary header and checksum, as cryptsetup probes.
Result<Copy> find_secondary(RawImage& image, uint64_t image_size) {
  std::optional<Copy> first_damaged;
  for (const uint64_t offset : kSecondaryOffsets) {
    if (offset >= image_size) break;
    RL_ASSIGN(Copy copy, read_copy(image, image_size, offset));
    if (copy.binary) return copy;
    if (copy.magic && !first_damaged) first_damaged = std::move(copy);
  }
  if (first_damaged) return std::move(*first_damaged);
  Copy none;
  none.offset = kSecondaryOffsets[0];
  none.error = bad("no secondary header magic at any offset from 16384 to 4194304");
  return none;
}

Result<std::string> random_uuid_v4() {
  std::array<uint8_t, 16> bytes{};
  RL_TRY(fill_random(bytes));
  bytes[6] = static_cast<uint8_t>((bytes[6] & 0x0f) | 0x40);
  bytes[8] = static_cast<uint8_t>((bytes[8] & 0x3f) | 0x80);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 15];
  }
  return out;
}

// The textual UUID form cryptsetup accepts (uuid_parse), lower-cased as uuid_unparse writes it.
std::optional<std::string> normalize_uuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return std::nullopt;
      out += c;
    } else if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
      out += c;
    } else if (c >= 'A' && c <= 'F') {
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      return std::nullopt;
    }
  }
  return out;
}

}  // namespace

Result<Luks2LoadResult> read_luks2_header(RawImage& image) {
  RL_ASSIGN(const uint64_t image_size, image.size());
  RL_ASSIGN(Copy primary, read_copy(image, image_size, 0));
  Copy secondary;
  if (primary.binary) {
    RL_ASSIGN(secondary, read_copy(image, image_size, primary.binary->hdr_size));
  } else {
    RL_ASSIGN(secondary, find_secondary(image, image_size));
  }

  if (!primary.usable() && !secondary.usable()) {
    return bad("no valid LUKS2 header on " + image.name() + ": " + primary.describe("primary") + "; " +
               secondary.describe("secondary"));
  }
  // Something other than a LUKS2 header where the primary belongs (another format created over the
  // volume, an LVM PV say) means the secondary copy is a leftover: recovering from it would open
  // stale data and, on the next header write, overwrite what is there now. cryptsetup refuses such
  // "ambiguous signatures" too. A wiped (all-zero) primary, or one that still carries the
  // secondary's UUID (a damaged copy of the same header), is recovered as usual.
  if (!primary.magic && !primary.blank && secondary.usable() && primary.uuid_field != secondary.binary->uuid) {
    return bad(image.name() + " starts with data that is not a LUKS2 header, while a LUKS2 header copy sits at " +
               std::to_string(secondary.offset) + "; not recovering from it (was another format written over it?)");
  }
  const Copy& current = !secondary.usable()                               ? primary
                        : !primary.usable()                               ? secondary
                        : secondary.binary->seqid > primary.binary->seqid ? secondary
                                                                          : primary;
  if (!current.metadata) {
    Error error = *current.error;
    return std::move(error.context("LUKS2 header on " + image.name()));
  }

  const Luks2Metadata& metadata = *current.metadata;
  const uint64_t hdr_size = current.binary->hdr_size;
  const uint64_t needed = 2 * hdr_size + metadata.config.keyslots_size;
  if (image_size < needed) {
    return bad(image.name() + " has " + std::to_string(image_size) + " bytes, fewer than the " +
               std::to_string(needed) + " bytes of its LUKS2 header and keyslots area");
  }

  Luks2LoadResult result;
  Luks2Header& header = result.header;
  header.hdr_size = hdr_size;
  header.binary = *current.binary;
  header.binary.secondary = false;
  header.binary.hdr_offset = 0;
  header.binary.csum = {};
  header.metadata = metadata;
  // A damaged copy gets a fresh salt when it is rewritten, as cryptsetup's recovery does.
  if (primary.binary) {
    header.binary.salt = primary.binary->salt;
  } else {
    RL_TRY(fill_random(header.binary.salt));
  }
  if (secondary.binary) {
    header.secondary_salt = secondary.binary->salt;
  } else {
    RL_TRY(fill_random(header.secondary_salt));
  }

  const uint64_t seqid = current.binary->seqid;
  std::vector<std::string> damage;
  const auto check = [&](const Copy& copy, const char* which) {
    if (copy.metadata && copy.binary->seqid == seqid) return true;
    if (copy.metadata) {
      damage.push_back(std::string(which) + " copy is older (seqid " + std::to_string(copy.binary->seqid) + " < " +
                       std::to_string(seqid) + ")");
    } else {
      damage.push_back(copy.describe(which));
    }
    return false;
  };
  result.primary_valid = check(primary, "primary");
  result.secondary_valid = check(secondary, "secondary");
  for (const auto& reason : damage) result.damage += (result.damage.empty() ? "" : "; ") + reason;
  return result;
}

Status write_luks2_header(RawImage& image, Luks2Header& header) {
  const uint64_t hdr_size = header.hdr_size;
  const std::string where = "writing the LUKS2 header to " + image.name();
  if (!luks2_hdr_size_valid(hdr_size) || header.binary.hdr_size != hdr_size) {
    return Error(Errc::failure, where + ": header size " + std::to_string(hdr_size) +
                                    " (binary header: " + std::to_string(header.binary.hdr_size) + ") is invalid");
  }
  if (auto valid = validate_luks2_metadata(header.metadata, hdr_size); !valid) {
    // The header in memory is wrong, not the one on the image.
    const Error& e = valid.error();
    return Error(e.is(Errc::bad_header) ? make_error_code(Errc::failure) : e.code(),
                 where + ": refusing invalid metadata: " + e.message());
  }
  RL_ASSIGN(const std::vector<uint8_t> json_area, luks2_json_area(header.metadata));
  RL_ASSIGN(const uint64_t image_size, image.size());
  const uint64_t needed = 2 * hdr_size + header.metadata.config.keyslots_size;
  if (image_size < needed) {
    return Error(Errc::no_space, where + ": the image has " + std::to_string(image_size) + " bytes, fewer than the " +
                                     std::to_string(needed) + " bytes of the header and keyslots area");
  }

  const uint64_t seqid = header.binary.seqid + 1;
  std::vector<uint8_t> buffer;
  for (const bool secondary : {true, false}) {
    Luks2BinaryHeader copy = header.binary;
    copy.secondary = secondary;
    copy.hdr_offset = secondary ? hdr_size : 0;
    copy.salt = secondary ? header.secondary_salt : header.binary.salt;
    copy.seqid = seqid;
    copy.csum = {};
    RL_ASSIGN(const auto unsummed, serialize_luks2_binary_header(copy));
    RL_ASSIGN(copy.csum, luks2_checksum(copy.checksum_alg, unsummed, json_area));
    RL_ASSIGN(const auto binary, serialize_luks2_binary_header(copy));
    buffer.assign(binary.begin(), binary.end());
    buffer.insert(buffer.end(), json_area.begin(), json_area.end());
    RL_TRY(image.write(copy.hdr_offset, buffer));
    RL_TRY(image.flush());
  }
  header.binary.seqid = seqid;
  return {};
}

Result<Luks2Header> new_luks2_header(uint64_t hdr_size, uint64_t keyslots_size, std::string uuid) {
  if (!luks2_hdr_size_valid(hdr_size)) {
    return Error(Errc::usage,
                 "LUKS2 header size " + std::to_string(hdr_size) + " is not a power of two from 16 KiB to 4 MiB");
  }
  if (keyslots_size % kAreaAlignment != 0 || keyslots_size > kLuks2MaxKeyslotsSize) {
    return Error(Errc::usage, "LUKS2 keyslots area size " + std::to_string(keyslots_size) +
                                  " is not a multiple of 4096 up to 128 MiB");
  }
  if (uuid.empty()) {
    RL_ASSIGN(uuid, random_uuid_v4());
  } else {
    auto normalized = normalize_uuid(uuid);
    if (!normalized) return Error(Errc::usage, "'" + uuid + "' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
    uuid = std::move(*normalized);
  }
  Luks2Header header;
  header.hdr_size = hdr_size;
  header.binary.hdr_size = hdr_size;
  header.binary.seqid = 1;
  header.binary.uuid = std::move(uuid);
  RL_TRY(fill_random(header.binary.salt));
  RL_TRY(fill_random(header.secondary_salt));
  header.metadata.config.json_size = hdr_size - kLuks2BinaryHeaderSize;
  header.metadata.config.keyslots_size = keyslots_size;
  return header;
}

uint64_t luks2_keyslots_area_offset(const Luks2Header& header) { return 2 * header.hdr_size; }

uint64_t luks2_keyslot_area_size(uint64_t key_bytes, uint32_t stripes) {
  return round_up(key_bytes * stripes, kAreaAlignment);
}

namespace {

// The free parts of the keyslots area, in order, each starting 4096-aligned: what no keyslot (of
// either kind) uses.
std::vector<std::pair<uint64_t, uint64_t>> free_areas(const Luks2Metadata& metadata, uint64_t hdr_size) {
  const uint64_t begin = 2 * hdr_size;
  const uint64_t end = begin + metadata.config.keyslots_size;
  std::vector<std::pair<uint64_t, uint64_t>> used;  // offset, size
  for (const auto& entry : metadata.keyslots) used.emplace_back(entry.second.area_offset, entry.second.area_size);
  for (const auto& entry : metadata.reencrypt_keyslots) {
    used.emplace_back(entry.second.area_offset, entry.second.area_size);
  }
  std::sort(used.begin(), used.end());
  std::vector<std::pair<uint64_t, uint64_t>> gaps;  // offset, size
  uint64_t offset = begin;
  for (const auto& [area_offset, area_size] : used) {
    if (offset < area_offset) gaps.emplace_back(offset, area_offset - offset);
    offset = std::max(offset, round_up(area_offset + area_size, kAreaAlignment));
  }
  if (offset < end) gaps.emplace_back(offset, end - offset);
  return gaps;
}

}  // namespace

Result<uint64_t> luks2_find_free_area(const Luks2Metadata& metadata, uint64_t hdr_size, uint64_t length) {
  const uint64_t wanted = round_up(length, kAreaAlignment);
  for (const auto& [offset, size] : free_areas(metadata, hdr_size)) {
    if (length > 0 && wanted <= size) return offset;
  }
  const uint64_t begin = 2 * hdr_size;
  return Error(Errc::no_space, "no free " + std::to_string(length) + "-byte area in the LUKS2 keyslots area [" +
                                   std::to_string(begin) + ", " +
                                   std::to_string(begin + metadata.config.keyslots_size) + ")");
}

std::pair<uint64_t, uint64_t> luks2_largest_free_area(const Luks2Metadata& metadata, uint64_t hdr_size) {
  std::pair<uint64_t, uint64_t> best{2 * hdr_size, 0};
  for (const auto& gap : free_areas(metadata, hdr_size)) {
    if (gap.second > best.second) best = gap;
  }
  return best;
}

}  // namespace rbdluks
