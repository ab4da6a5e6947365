// Scattered sectors: two cursors, one over the ciphertext buffers and one over the plaintext ones,
// advanced together a run of sectors at a time.
#include "scattered_sectors.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

#include "alignment.h"

namespace rbdluks {
namespace {

// A position in a list of buffers, read as one byte sequence.
template <typename Byte>
class Cursor {
 public:
  explicit Cursor(std::span<const std::span<Byte>> buffers) : buffers_(buffers) { skip_empty(); }

  // Bytes from here to the end of the current buffer.
  size_t contiguous() const { return index_ == buffers_.size() ? 0 : buffers_[index_].size() - offset_; }

  // The next n bytes, which must lie in the current buffer.
  std::span<Byte> take(size_t n) {
    assert(n <= contiguous());
    const std::span<Byte> bytes = buffers_[index_].subspan(offset_, n);
    offset_ += n;
    skip_empty();
    return bytes;
  }

 private:
  void skip_empty() {
    while (index_ < buffers_.size() && offset_ == buffers_[index_].size()) {
      ++index_;
      offset_ = 0;
    }
  }

  std::span<const std::span<Byte>> buffers_;
  size_t index_ = 0;
  size_t offset_ = 0;
};

void gather(Cursor<const uint8_t>& from, std::span<uint8_t> to) {
  while (!to.empty()) {
    const auto bytes = from.take(std::min(to.size(), from.contiguous()));
    assert(!bytes.empty());
    std::memcpy(to.data(), bytes.data(), bytes.size());
    to = to.subspan(bytes.size());
  }
}

void scatter(std::span<const uint8_t> from, Cursor<uint8_t>& to) {
  while (!from.empty()) {
    const auto bytes = to.take(std::min(from.size(), to.contiguous()));
    assert(!bytes.empty());
    std::memcpy(bytes.data(), from.data(), bytes.size());
    from = from.subspan(bytes.size());
  }
}

}  // namespace

void decrypt_scattered(const XtsCipher& cipher, const SectorSpan& span,
                       std::span<const std::span<const uint8_t>> ciphertext,
                       std::span<const std::span<uint8_t>> plaintext) {
  const uint32_t sector_size = span.sector_size;
  assert(sector_size <= kMaxSectorSize);
  Cursor<const uint8_t> in(ciphertext);
  Cursor<uint8_t> out(plaintext);
  alignas(64) std::array<uint8_t, kMaxSectorSize> one_sector;
  for (uint64_t at = span.begin; at < span.end;) {
    if (at >= span.full_begin() && at < span.full_end()) {
      const uint64_t run =
          round_down(std::min<uint64_t>({in.contiguous(), out.contiguous(), span.full_end() - at}), sector_size);
      if (run > 0) {
        decrypt_sectors(cipher, in.take(run), out.take(run), sector_size, at);
        at += run;
        continue;
      }
    }
    const std::span<uint8_t> sector(one_sector.data(), sector_size);
    gather(in, sector);
    decrypt_sectors(cipher, sector, sector_size, at);
    const SectorSpan part = part_in_sector(span, at);
    scatter(sector.subspan(part.request_begin - at, part.request_end - part.request_begin), out);
    at += sector_size;
  }
}

}  // namespace rbdluks
