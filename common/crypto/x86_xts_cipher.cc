// X86XtsCipher: argument checks shared by the x86-64 backends, then the kernel.
#include "x86_xts_cipher.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "secure_buffer.h"

namespace rbdluks {
namespace {

// The interface cannot report errors and a partial sector would stay in plaintext, so a caller that
// breaks the contract stops the process rather than leak data (as the portable backend does).
void require_whole_sectors(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size) {
  const size_t size = in.size();
  if ((sector_size != 512 && sector_size != 1024 && sector_size != 2048 && sector_size != 4096) ||
      size % sector_size != 0 || out.size() != size) {
    std::fprintf(stderr, "rbd-luks: XTS called with %zu bytes into %zu in sectors of %zu\n", size, out.size(),
                 sector_size);
    std::abort();
  }
  const auto* a = in.data();
  const auto* b = out.data();
  if (a != b && size != 0 && a < b + size && b < a + size) {
    std::fprintf(stderr, "rbd-luks: XTS called with overlapping input and output\n");
    std::abort();
  }
}

// Zeroes the stack just below the caller's frame, where the kernel it has just called kept its
// locals: each batch's first tweaks, the broadcast round keys, and whatever the compiler spilled
// when the vector registers ran out. The kernels' frames are 0.8-2.4 KiB (common/CMakeLists.txt
// fails an optimised build past 2.75 KiB); noinline so this frame lands where theirs was.
__attribute__((noinline)) void wipe_kernel_stack() {
  uint8_t area[3072];
  secure_zero(area, sizeof(area));
}

}  // namespace

void X86XtsCipher::encrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
                           uint64_t first_iv) const {
  run(in, out, sector_size, first_iv, true);
}

void X86XtsCipher::decrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
                           uint64_t first_iv) const {
  run(in, out, sector_size, first_iv, false);
}

void X86XtsCipher::run(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size, uint64_t first_iv,
                       bool encrypt) const {
  require_whole_sectors(in, out, sector_size);
  kernel_(keys_, in.data(), out.data(), in.size(), sector_size, first_iv, encrypt);
  wipe_kernel_stack();
}

}  // namespace rbdluks
