// EncryptedImage: reads and writes are cut into pieces no larger than a bounce buffer; every piece
// holds the range lock on its whole sectors (shared for reads, exclusive for writes) from its first
// raw read to its last raw write, which is what makes read-modify-write of shared sectors safe.
// Zeroing needs no bounce buffer for whole sectors, so it locks and handles its range in one go.
#include "encrypted_image.h"

#include <algorithm>
#include <cassert>

namespace rbdluks {

EncryptedImage::EncryptedImage(RawImage& raw, std::shared_ptr<const XtsCipher> cipher, uint64_t data_offset,
                               uint32_t sector_size, std::optional<uint64_t> data_size, BounceBufferConfig bounce)
    : raw_(raw),
      cipher_(std::move(cipher)),
      data_offset_(data_offset),
      sector_size_(sector_size),
      data_size_(data_size),
      bounce_(std::max<size_t>(bounce.buffer_bytes, sector_size), bounce.count) {
  assert(cipher_ != nullptr);
  assert(sector_size_ >= 512 && sector_size_ <= 4096 && (sector_size_ & (sector_size_ - 1)) == 0);
}

Result<uint64_t> EncryptedImage::size() {
  RL_ASSIGN(const uint64_t raw_size, raw_.size());
  return data_segment_size(raw_size, data_offset_, sector_size_, data_size_);
}

Status EncryptedImage::check_range(const char* what, uint64_t offset, uint64_t length) {
  RL_ASSIGN(const uint64_t size, this->size());
  if (offset > size || length > size - offset) {
    return Error(Errc::failure, raw_.name() + ": " + what + " of " + std::to_string(length) + " bytes at " +
                                    std::to_string(offset) + " passes the end of the encrypted image (size " +
                                    std::to_string(size) + ")");
  }
  return {};
}

Status EncryptedImage::read_sectors(const SectorSpan& span, std::span<uint8_t> buffer) {
  RL_TRY(raw_.read(data_offset_ + span.begin, buffer));
  decrypt_sectors(*cipher_, buffer, sector_size_, span.begin);
  return {};
}

Status EncryptedImage::read(uint64_t offset, std::span<uint8_t> out) {
  RL_TRY(check_range("read", offset, out.size()));
  const uint64_t end = offset + out.size();
  for (uint64_t position = offset; position < end;) {
    const SectorSpan span = next_chunk(position, end, bounce_.buffer_bytes(), sector_size_);
    const auto guard = sectors_locked_.lock(span.begin, span.end, RangeLock::Mode::shared);
    const std::span<uint8_t> dest = out.subspan(span.request_begin - offset, span.request_end - span.request_begin);
    if (span.aligned()) {
      // Whole sectors decrypt in place in the caller's buffer: no bounce copy.
      RL_TRY(read_sectors(span, dest));
    } else {
      const auto lease = bounce_.acquire();
      const std::span<uint8_t> buffer = lease.span().first(span.size());
      RL_TRY(read_sectors(span, buffer));
      std::ranges::copy(span.window(buffer), dest.begin());
    }
    position = span.request_end;
  }
  return {};
}

Status EncryptedImage::read_partial_sectors(const SectorSpan& span, std::span<uint8_t> buffer) {
  for (uint64_t sector : partial_sectors(span)) {
    RL_TRY(read_sectors(cover_sectors(sector, sector_size_, sector_size_), span.sector_in(buffer, sector)));
  }
  return {};
}

Status EncryptedImage::write(uint64_t offset, std::span<const uint8_t> data) {
  RL_TRY(check_range("write", offset, data.size()));
  const uint64_t end = offset + data.size();
  for (uint64_t position = offset; position < end;) {
    const SectorSpan span = next_chunk(position, end, bounce_.buffer_bytes(), sector_size_);
    const auto guard = sectors_locked_.lock(span.begin, span.end, RangeLock::Mode::exclusive);
    const auto lease = bounce_.acquire();
    const std::span<uint8_t> buffer = lease.span().first(span.size());
    RL_TRY(read_partial_sectors(span, buffer));
    encode_write(*cipher_, buffer, span,
                 data.subspan(span.request_begin - offset, span.request_end - span.request_begin));
    RL_TRY(raw_.write(data_offset_ + span.begin, buffer));
    position = span.request_end;
  }
  return {};
}

Status EncryptedImage::zero_range(uint64_t offset, uint64_t length) {
  if (length == 0) return {};
  const SectorSpan span = cover_sectors(offset, length, sector_size_);
  const auto guard = sectors_locked_.lock(span.begin, span.end, RangeLock::Mode::exclusive);
  for (uint64_t sector : partial_sectors(span)) {
    const SectorSpan part = part_in_sector(span, sector);
    const auto lease = bounce_.acquire();
    const std::span<uint8_t> buffer = lease.span().first(sector_size_);
    RL_TRY(read_sectors(part, buffer));
    encode_zeroes(*cipher_, buffer, part);
    RL_TRY(raw_.write(data_offset_ + sector, buffer));
  }
  if (span.full_end() > span.full_begin()) {
    RL_TRY(raw_.write_zeroes(data_offset_ + span.full_begin(), span.full_end() - span.full_begin()));
  }
  return {};
}

Status EncryptedImage::write_zeroes(uint64_t offset, uint64_t length) {
  RL_TRY(check_range("write_zeroes", offset, length));
  return zero_range(offset, length);
}

Status EncryptedImage::discard(uint64_t offset, uint64_t length) {
  RL_TRY(check_range("discard", offset, length));
  return zero_range(offset, length);
}

Status EncryptedImage::flush() { return raw_.flush(); }

Result<std::vector<Extent>> EncryptedImage::allocated_extents(uint64_t offset, uint64_t length) {
  RL_TRY(check_range("allocation map", offset, length));
  RL_ASSIGN(const auto raw, raw_.allocated_extents(data_offset_ + offset, length));
  return plaintext_extents(raw, data_offset_, sector_size_, offset, length);
}

}  // namespace rbdluks
