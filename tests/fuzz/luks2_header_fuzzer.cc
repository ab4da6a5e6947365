// libFuzzer harness: a LUKS2 header whose JSON metadata is the fuzz input.
//
// Input: byte 0 picks the header size (16 KiB << (byte % 9), every size cryptsetup allows), byte 1
// is a set of flags (below), and the rest is the JSON area: the text, then NULs up to the area's
// size (longer input is cut there). The harness writes the header copies around it as cryptsetup
// lays them out, with valid SHA-256 checksums, and calls load_and_describe.
//
// Why built, not raw: every byte of a header copy, JSON included, is under its checksum, so
// mutating raw image bytes almost never gets past verify_luks2_checksum. Recomputing the checksum
// is what an attacker does too, and doing it here puts the fuzzer's effort into the JSON parser and
// cryptsetup's validation rules, the largest part of the LUKS2 reader. luks2_image_fuzzer mutates
// the binary header fields as raw bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "luks2_binary_header.h"
#include "memory_image.h"
#include "unlocked_surface.h"

namespace {

using namespace rbdluks;

// Flags of byte 1: which copies there are, which is current and which are damaged, so that the
// choice between the copies (seqid, recovery from the secondary) sees the same JSON in every role.
// Without kSecondaryPresent only the primary is written: the reader then parses the JSON once, not
// twice, which doubles the runs a second for the commonest inputs.
constexpr uint8_t kSecondaryPresent = 1;
constexpr uint8_t kSecondaryNewer = 2;  // the secondary's seqid is one higher
constexpr uint8_t kPrimaryBadChecksum = 4;
constexpr uint8_t kSecondaryBadChecksum = 8;
constexpr uint8_t kPrimaryWiped = 16;  // the primary's binary header is all zeros

// Large enough for the keyslots area (at most 128 MiB) behind the largest header pair.
constexpr uint64_t kImageSize = uint64_t{1} << 30;

// Writes one copy at its offset in image: binary header, JSON area, checksum.
void place_copy(std::vector<uint8_t>& image, uint64_t hdr_size, bool secondary, uint64_t seqid, bool bad_checksum,
                std::span<const uint8_t> json_area) {
  Luks2BinaryHeader binary;
  binary.secondary = secondary;
  binary.hdr_size = hdr_size;
  binary.hdr_offset = secondary ? hdr_size : 0;
  binary.seqid = seqid;
  binary.uuid = "2f8a4c1e-5b3d-4e6f-8a9b-0c1d2e3f4a5b";
  auto unsummed = serialize_luks2_binary_header(binary);
  if (!unsummed) __builtin_trap();  // the fields above always fit
  auto checksum = luks2_checksum(binary.checksum_alg, *unsummed, json_area);
  if (!checksum) __builtin_trap();  // sha256 is always known
  binary.csum = *checksum;
  if (bad_checksum) binary.csum[0] ^= 1;
  auto bytes = serialize_luks2_binary_header(binary);
  if (!bytes) __builtin_trap();
  uint8_t* copy = image.data() + binary.hdr_offset;
  std::memcpy(copy, bytes->data(), bytes->size());
  std::memcpy(copy + kLuks2BinaryHeaderSize, json_area.data(), json_area.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint64_t hdr_size = kLuks2MinHdrSize << (data[0] % 9);
  const uint8_t flags = data[1];
  const std::span<const uint8_t> text(data + 2, size - 2);

  std::vector<uint8_t> json_area(hdr_size - kLuks2BinaryHeaderSize, 0);
  std::memcpy(json_area.data(), text.data(), std::min(text.size(), json_area.size()));

  std::vector<uint8_t> image(2 * hdr_size, 0);
  place_copy(image, hdr_size, false, 1, (flags & kPrimaryBadChecksum) != 0, json_area);
  if ((flags & kSecondaryPresent) != 0) {
    place_copy(image, hdr_size, true, (flags & kSecondaryNewer) != 0 ? 2 : 1, (flags & kSecondaryBadChecksum) != 0,
               json_area);
  }
  if ((flags & kPrimaryWiped) != 0) std::memset(image.data(), 0, kLuks2BinaryHeaderSize);

  fuzz::MemoryImage memory(std::move(image), kImageSize);
  fuzz::load_and_describe(memory);
  return 0;
}
