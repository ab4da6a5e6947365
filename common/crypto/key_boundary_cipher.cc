// The split of a run of sectors at the key boundary.
#include "key_boundary_cipher.h"

#include <algorithm>
#include <cassert>

namespace rbdluks {

bool KeyBoundaryCipher::begin(std::shared_ptr<const XtsCipher> new_key, uint64_t boundary) {
  if (begun()) return false;
  new_ = std::move(new_key);
  boundary_iv_.store(boundary / 512, std::memory_order_release);
  return true;
}

void KeyBoundaryCipher::advance(uint64_t boundary) {
  assert(begun() && boundary / 512 >= boundary_iv_.load(std::memory_order_relaxed));
  boundary_iv_.store(boundary / 512, std::memory_order_release);
}

void KeyBoundaryCipher::finish() {
  assert(begun());
  boundary_iv_.store(kEverywhere, std::memory_order_release);
}

size_t KeyBoundaryCipher::sectors_before(size_t sectors, size_t sector_size, uint64_t first_iv) const {
  const uint64_t boundary = boundary_iv_.load(std::memory_order_acquire);
  if (boundary == kNotBegun || boundary <= first_iv) return 0;
  const uint64_t ivs_per_sector = sector_size / 512;
  // The boundary falls on a sector boundary of the run: it moves by whole hotzones, which are whole
  // sectors.
  return static_cast<size_t>(std::min<uint64_t>(sectors, (boundary - first_iv) / ivs_per_sector));
}

template <typename Apply>
void KeyBoundaryCipher::split(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
                              uint64_t first_iv, const Apply& apply) const {
  const size_t sectors = in.size() / sector_size;
  const size_t before = sectors_before(sectors, sector_size, first_iv);
  if (before > 0) apply(*new_, in.first(before * sector_size), out.first(before * sector_size), first_iv);
  if (before < sectors) {
    const size_t bytes = before * sector_size;
    apply(*old_, in.subspan(bytes), out.subspan(bytes), first_iv + bytes / 512);
  }
}

void KeyBoundaryCipher::encrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
                                uint64_t first_iv) const {
  split(in, out, sector_size, first_iv,
        [sector_size](const XtsCipher& cipher, std::span<const uint8_t> from, std::span<uint8_t> to, uint64_t iv) {
          cipher.encrypt(from, to, sector_size, iv);
        });
}

void KeyBoundaryCipher::decrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
                                uint64_t first_iv) const {
  split(in, out, sector_size, first_iv,
        [sector_size](const XtsCipher& cipher, std::span<const uint8_t> from, std::span<uint8_t> to, uint64_t iv) {
          cipher.decrypt(from, to, sector_size, iv);
        });
}

}  // namespace rbdluks
