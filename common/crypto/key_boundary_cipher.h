// KeyBoundaryCipher: the cipher of a volume whose data is moving from one key to another while it
// is in use (an online reencryption): sectors before a boundary are under the new key, the others
// under the old one, and the boundary only moves forward.
//
// The data path keeps one for the life of an open image, so that a reencryption can begin without
// swapping the cipher under requests in flight: until begin() there is only the old key. Whoever
// moves the boundary past a range must first keep every request off that range (the data path's
// range lock) and move it only once the range's sectors are under the new key; a request that holds
// its range then sees the same key for each of its sectors from start to end.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "xts_cipher.h"

namespace rbdluks {

class KeyBoundaryCipher final : public XtsCipher {
 public:
  explicit KeyBoundaryCipher(std::shared_ptr<const XtsCipher> old_key) : old_(std::move(old_key)) {}

  // Brings in the new key, with the boundary at `boundary` (a byte offset of the encrypted area, a
  // multiple of 512). Only once: false, and nothing changed, when a new key is there already.
  bool begin(std::shared_ptr<const XtsCipher> new_key, uint64_t boundary);
  // Moves the boundary forward to `boundary` (a multiple of 512) after begin().
  void advance(uint64_t boundary);
  // The new key everywhere, also past the end the run knew (an image grown afterwards).
  void finish();
  bool begun() const { return boundary_iv_.load(std::memory_order_acquire) != kNotBegun; }

  void encrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
               uint64_t first_iv) const override;
  void decrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
               uint64_t first_iv) const override;
  std::string_view backend_name() const override { return old_->backend_name(); }

 private:
  static constexpr uint64_t kNotBegun = UINT64_MAX;
  static constexpr uint64_t kEverywhere = UINT64_MAX - 1;
  // Sectors [0, n) of a run starting at first_iv lie before the boundary, the rest after.
  size_t sectors_before(size_t sectors, size_t sector_size, uint64_t first_iv) const;
  template <typename Apply>
  void split(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size, uint64_t first_iv,
             const Apply& apply) const;

  const std::shared_ptr<const XtsCipher> old_;
  // Written once, before the boundary is first published (release), and read only after it is
  // read (acquire) and found past a sector, so it needs no lock of its own.
  std::shared_ptr<const XtsCipher> new_;
  // The boundary in tweak units (bytes / 512); kNotBegun until begin().
  std::atomic<uint64_t> boundary_iv_{kNotBegun};
};

}  // namespace rbdluks
