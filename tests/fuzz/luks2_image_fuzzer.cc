// libFuzzer harness: the fuzz input is the start of an image, read as it is (LUKS2 mostly, though
// load_luks also takes LUKS1 and refuses everything else), past its end the image reads as zeros.
//
// Every header copy the reader would look at (the primary at 0, a secondary at any offset where
// cryptsetup probes for one) whose binary header parses gets its checksum recomputed before the
// read, as an attacker would: otherwise nearly every mutation ends at the checksum check, and the
// binary header's fields (hdr_size, seqid, offsets, strings) and their interplay with the JSON
// would go untested. luks2_header_fuzzer covers bad checksums and mutates the JSON in place.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "luks2_binary_header.h"
#include "memory_image.h"
#include "unlocked_surface.h"

namespace {

using namespace rbdluks;

// Where the binary header keeps its checksum (the layout in luks2_binary_header.h).
constexpr size_t kCsumOffset = 448;
// The copies' offsets: the primary, then where cryptsetup looks for the secondary.
constexpr uint64_t kCopyOffsets[] = {0,       0x4000,  0x8000,   0x10000,  0x20000,
                                     0x40000, 0x80000, 0x100000, 0x200000, 0x400000};
// Large enough for the keyslots area (at most 128 MiB) behind the largest header pair.
constexpr uint64_t kImageSize = uint64_t{1} << 30;

// Recomputes the checksum of the copy at offset when its binary header parses.
void repair_checksum(std::vector<uint8_t>& image, uint64_t offset) {
  if (offset + kLuks2BinaryHeaderSize > image.size()) return;
  const std::span<uint8_t> binary_bytes(image.data() + offset, kLuks2BinaryHeaderSize);
  auto binary = parse_luks2_binary_header(binary_bytes, offset);
  if (!binary) return;
  if (image.size() < offset + binary->hdr_size) image.resize(offset + binary->hdr_size, 0);
  std::vector<uint8_t> unsummed(image.begin() + static_cast<ptrdiff_t>(offset),
                                image.begin() + static_cast<ptrdiff_t>(offset + kLuks2BinaryHeaderSize));
  std::memset(unsummed.data() + kCsumOffset, 0, kLuks2ChecksumSize);
  const std::span<const uint8_t> json_area(image.data() + offset + kLuks2BinaryHeaderSize,
                                           binary->hdr_size - kLuks2BinaryHeaderSize);
  auto checksum = luks2_checksum(binary->checksum_alg, unsummed, json_area);
  if (!checksum) return;  // a hash rbd-luks does not know: the reader says so
  std::memcpy(image.data() + offset + kCsumOffset, checksum->data(), checksum->size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> image(data, data + size);
  for (const uint64_t offset : kCopyOffsets) repair_checksum(image, offset);
  fuzz::MemoryImage memory(std::move(image), kImageSize);
  fuzz::load_and_describe(memory);
  return 0;
}
