// Sector codec: the pure steps of the encrypted data path, shared by the synchronous EncryptedImage
// and the asynchronous librbd dispatch layer. No I/O and no locking here: the callers read and write
// the sectors and hold the range locks; these functions decide which sectors, and transform them.
//
// All offsets are plaintext offsets (0 = first byte of the data segment). Data is encrypted in
// sectors of sector_size bytes (512..4096) with AES-XTS, tweak = plaintext offset / 512. An all-zero
// ciphertext sector is a hole (never written, or zeroed) and reads as zeros without being decrypted,
// as librbd's native encryption does. So does an all-zero 512-byte unit inside a sector (XTS
// encrypts each 16-byte block on its own, so a unit decrypts without the rest of its sector): that
// is how a sector looks while clients that write parts of it put it back unit by unit (rmw_plan.h),
// and real ciphertext is never 512 zero bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "xts_cipher.h"

namespace rbdluks {

// The whole sectors covering the request [request_begin, request_end), which is never empty.
struct SectorSpan {
  uint64_t begin = 0;  // first byte of the first sector touched
  uint64_t end = 0;    // one past the last byte of the last sector touched
  uint64_t request_begin = 0;
  uint64_t request_end = 0;
  uint32_t sector_size = 512;

  uint64_t size() const { return end - begin; }
  // The request is exactly whole sectors, so it needs no read-modify-write.
  bool aligned() const { return begin == request_begin && end == request_end; }
  // The first sector is only partly covered by the request.
  bool head_partial() const { return request_begin != begin || request_end < begin + sector_size; }
  // The last sector is only partly covered by the request, and is not also the first.
  bool tail_partial() const { return end - sector_size != begin && request_end != end; }

  // [full_begin(), full_end()): the sectors the request covers completely (possibly none).
  uint64_t full_begin() const { return head_partial() ? begin + sector_size : begin; }
  uint64_t full_end() const { return tail_partial() ? end - sector_size : end; }

  // The request's bytes inside a buffer that holds the whole span.
  template <typename T>
  std::span<T> window(std::span<T> span_buffer) const {
    return span_buffer.subspan(request_begin - begin, request_end - request_begin);
  }
  // Sector at plaintext offset sector_offset inside a buffer that holds the whole span.
  template <typename T>
  std::span<T> sector_in(std::span<T> span_buffer, uint64_t sector_offset) const {
    return span_buffer.subspan(sector_offset - begin, sector_size);
  }
};

// Plaintext offsets of the partly covered sectors of a span, which a write must read and decrypt
// before it can re-encrypt them whole: none, the head, the tail, or both.
struct PartialSectors {
  std::array<uint64_t, 2> offsets{};
  size_t count = 0;

  const uint64_t* begin() const { return offsets.data(); }
  const uint64_t* end() const { return offsets.data() + count; }
};

// Plaintext bytes of a data segment: what follows data_offset in a raw image of raw_size bytes,
// rounded down to whole sectors, and no more than fixed_size when the segment has one (LUKS2 allows
// any size there, even one that passes the end of the image).
uint64_t data_segment_size(uint64_t raw_size, uint64_t data_offset, uint32_t sector_size,
                           std::optional<uint64_t> fixed_size);

// The sectors covering [offset, offset + length); length > 0, sector_size a power of two.
SectorSpan cover_sectors(uint64_t offset, uint64_t length, uint32_t sector_size);

// The next piece of a large request [position, request_end) whose span fits a buffer of max_span_bytes
// (a multiple of sector_size). Pieces end on sector boundaries, so no two pieces share a sector.
SectorSpan next_chunk(uint64_t position, uint64_t request_end, uint64_t max_span_bytes, uint32_t sector_size);

PartialSectors partial_sectors(const SectorSpan& span);

// The part of span's request that falls in the one sector at plaintext offset sector.
SectorSpan part_in_sector(const SectorSpan& span, uint64_t sector);

// True when every byte is zero; reads 64 bytes per step.
bool is_zero(std::span<const uint8_t> bytes);

// The unit of the hole rule inside a sector, and of the writes that put a read-modify-write of a
// partial sector back (rmw_plan.h): 512 bytes, the most that librbd 16 compares and replaces in one
// compare-and-write.
inline constexpr uint32_t kAtomicUnit = 512;

// Bit i is set when bytes [i * kAtomicUnit, (i + 1) * kAtomicUnit) of sector are all zeros.
uint32_t zero_units(std::span<const uint8_t> sector);

// In place; sectors.size() is a multiple of sector_size and plaintext_offset a multiple of sector_size.
void encrypt_sectors(const XtsCipher& cipher, std::span<uint8_t> sectors, uint32_t sector_size,
                     uint64_t plaintext_offset);
// From in into out, which have the same size and do not overlap.
void encrypt_sectors(const XtsCipher& cipher, std::span<const uint8_t> in, std::span<uint8_t> out, uint32_t sector_size,
                     uint64_t plaintext_offset);
// In place; all-zero ciphertext sectors (holes) and units are left as zeros, the rest is decrypted.
void decrypt_sectors(const XtsCipher& cipher, std::span<uint8_t> sectors, uint32_t sector_size,
                     uint64_t plaintext_offset);
// From in into out (same size; the same bytes or not overlapping): holes and all-zero units become
// zeros in out.
void decrypt_sectors(const XtsCipher& cipher, std::span<const uint8_t> in, std::span<uint8_t> out, uint32_t sector_size,
                     uint64_t plaintext_offset);

// Turns span_buffer into the ciphertext to write for a write of data at the span's request.
// Beforehand the partial sectors (partial_sectors(span)) must hold their current plaintext; the
// rest of span_buffer is overwritten. span_buffer.size() == span.size(), data.size() == request size.
void encode_write(const XtsCipher& cipher, std::span<uint8_t> span_buffer, const SectorSpan& span,
                  std::span<const uint8_t> data);

// Same for zeroing the request: fully covered sectors become holes (all-zero ciphertext), partial
// sectors are re-encrypted with the request's bytes zeroed.
void encode_zeroes(const XtsCipher& cipher, std::span<uint8_t> span_buffer, const SectorSpan& span);

}  // namespace rbdluks
