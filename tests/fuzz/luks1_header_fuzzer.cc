// libFuzzer harness: the fuzz input is the start of a LUKS1 image (the 592-byte header and its
// padding to 1024 bytes, as cryptsetup reads it); the rest of a 64 MiB image reads as zeros. The
// LUKS1 header has no checksum, so raw mutation reaches every check of parse_luks1_header:
// cryptsetup's rules for names, sizes, iteration counts, stripes and keyslot areas against the
// payload and the image's end.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "memory_image.h"
#include "unlocked_surface.h"

namespace {

// Room for the 4 MiB payload offset of librbd's LUKS1 images and the keyslot areas of 512-byte
// keys, while a payload offset near 2^32 sectors still passes the image's end.
constexpr uint64_t kImageSize = uint64_t{64} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rbdluks::fuzz::MemoryImage memory(std::vector<uint8_t>(data, data + size), kImageSize);
  rbdluks::fuzz::load_and_describe(memory);
  return 0;
}
