// Sector codec: span arithmetic, the hole rule and the write encodings.
#include "sector_codec.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "alignment.h"

namespace rbdluks {
namespace {

constexpr uint64_t kTweakUnit = 512;

}  // namespace

uint64_t data_segment_size(uint64_t raw_size, uint64_t data_offset, uint32_t sector_size,
                           std::optional<uint64_t> fixed_size) {
  const uint64_t available = raw_size <= data_offset ? 0 : round_down(raw_size - data_offset, sector_size);
  return std::min(available, fixed_size.value_or(UINT64_MAX));
}

SectorSpan cover_sectors(uint64_t offset, uint64_t length, uint32_t sector_size) {
  assert(length > 0 && sector_size >= kTweakUnit && (sector_size & (sector_size - 1)) == 0);
  const uint64_t request_end = offset + length;
  return SectorSpan{
      .begin = round_down(offset, sector_size),
      .end = round_up(request_end, sector_size),
      .request_begin = offset,
      .request_end = request_end,
      .sector_size = sector_size,
  };
}

SectorSpan next_chunk(uint64_t position, uint64_t request_end, uint64_t max_span_bytes, uint32_t sector_size) {
  assert(position < request_end && max_span_bytes >= sector_size && max_span_bytes % sector_size == 0);
  const uint64_t chunk_end = std::min(request_end, round_down(position, sector_size) + max_span_bytes);
  return cover_sectors(position, chunk_end - position, sector_size);
}

PartialSectors partial_sectors(const SectorSpan& span) {
  PartialSectors partial;
  if (span.head_partial()) partial.offsets[partial.count++] = span.begin;
  if (span.tail_partial()) partial.offsets[partial.count++] = span.end - span.sector_size;
  return partial;
}

SectorSpan part_in_sector(const SectorSpan& span, uint64_t sector) {
  assert(sector >= span.begin && sector < span.end && sector % span.sector_size == 0);
  const uint64_t from = std::max(span.request_begin, sector);
  const uint64_t to = std::min(span.request_end, sector + span.sector_size);
  return cover_sectors(from, to - from, span.sector_size);
}

bool is_zero(std::span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  // memcpy into words keeps this legal for any alignment; the compiler turns it into vector loads.
  for (; n >= 64; p += 64, n -= 64) {
    uint64_t w[8];
    std::memcpy(w, p, sizeof w);
    if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) return false;
  }
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    if (w != 0) return false;
  }
  for (; n > 0; ++p, --n) {
    if (*p != 0) return false;
  }
  return true;
}

uint32_t zero_units(std::span<const uint8_t> sector) {
  assert(sector.size() % kAtomicUnit == 0 && sector.size() / kAtomicUnit < 32);
  uint32_t mask = 0;
  for (size_t unit = 0; unit < sector.size() / kAtomicUnit; ++unit) {
    // Ciphertext almost never starts with 8 zero bytes, so one load settles nearly every unit.
    uint64_t head;
    std::memcpy(&head, sector.data() + unit * kAtomicUnit, sizeof head);
    if (head == 0 && is_zero(sector.subspan(unit * kAtomicUnit, kAtomicUnit))) mask |= uint32_t{1} << unit;
  }
  return mask;
}

void encrypt_sectors(const XtsCipher& cipher, std::span<uint8_t> sectors, uint32_t sector_size,
                     uint64_t plaintext_offset) {
  encrypt_sectors(cipher, std::span<const uint8_t>(sectors), sectors, sector_size, plaintext_offset);
}

void encrypt_sectors(const XtsCipher& cipher, std::span<const uint8_t> in, std::span<uint8_t> out, uint32_t sector_size,
                     uint64_t plaintext_offset) {
  assert(in.size() == out.size() && in.size() % sector_size == 0 && plaintext_offset % sector_size == 0);
  if (!in.empty()) cipher.encrypt(in, out, sector_size, plaintext_offset / kTweakUnit);
}

void decrypt_sectors(const XtsCipher& cipher, std::span<uint8_t> sectors, uint32_t sector_size,
                     uint64_t plaintext_offset) {
  decrypt_sectors(cipher, std::span<const uint8_t>(sectors), sectors, sector_size, plaintext_offset);
}

void decrypt_sectors(const XtsCipher& cipher, std::span<const uint8_t> in, std::span<uint8_t> out, uint32_t sector_size,
                     uint64_t plaintext_offset) {
  assert(in.size() == out.size() && in.size() % sector_size == 0 && plaintext_offset % sector_size == 0);
  // Runs of written sectors are decrypted in one call, which lets the cipher backend pipeline them.
  size_t run_begin = 0;
  auto decrypt_run = [&](size_t run_end) {
    if (run_end > run_begin) {
      cipher.decrypt(in.subspan(run_begin, run_end - run_begin), out.subspan(run_begin, run_end - run_begin),
                     sector_size, (plaintext_offset + run_begin) / kTweakUnit);
    }
  };
  // A sector with all-zero units ends the run; the zero units are found before decrypting, which
  // may overwrite them in place.
  const uint32_t all_units = (uint32_t{1} << (sector_size / kAtomicUnit)) - 1;
  for (size_t at = 0; at < in.size(); at += sector_size) {
    const uint32_t zeros = zero_units(in.subspan(at, sector_size));
    if (zeros == 0) continue;
    decrypt_run(at);
    if (zeros != all_units) {
      cipher.decrypt(in.subspan(at, sector_size), out.subspan(at, sector_size), sector_size,
                     (plaintext_offset + at) / kTweakUnit);
    }
    for (size_t unit = 0; unit < sector_size / kAtomicUnit; ++unit) {
      if ((zeros >> unit & 1) != 0) std::memset(out.data() + at + unit * kAtomicUnit, 0, kAtomicUnit);
    }
    run_begin = at + sector_size;
  }
  decrypt_run(in.size());
}

void encode_write(const XtsCipher& cipher, std::span<uint8_t> span_buffer, const SectorSpan& span,
                  std::span<const uint8_t> data) {
  assert(span_buffer.size() == span.size() && data.size() == span.request_end - span.request_begin);
  // Partial sectors: the request's bytes merged into their plaintext, encrypted in place.
  for (uint64_t sector : partial_sectors(span)) {
    const SectorSpan part = part_in_sector(span, sector);
    std::ranges::copy(data.subspan(part.request_begin - span.request_begin, part.request_end - part.request_begin),
                      span_buffer.begin() + static_cast<ptrdiff_t>(part.request_begin - span.begin));
    encrypt_sectors(cipher, span.sector_in(span_buffer, sector), span.sector_size, sector);
  }
  // Whole sectors: encrypted straight from data, one pass over memory rather than a copy and a pass.
  if (span.full_end() > span.full_begin()) {
    const uint64_t bytes = span.full_end() - span.full_begin();
    encrypt_sectors(cipher, data.subspan(span.full_begin() - span.request_begin, bytes),
                    span_buffer.subspan(span.full_begin() - span.begin, bytes), span.sector_size, span.full_begin());
  }
}

void encode_zeroes(const XtsCipher& cipher, std::span<uint8_t> span_buffer, const SectorSpan& span) {
  assert(span_buffer.size() == span.size());
  std::ranges::fill(span.window(span_buffer), uint8_t{0});
  for (uint64_t sector : partial_sectors(span)) {
    encrypt_sectors(cipher, span.sector_in(span_buffer, sector), span.sector_size, sector);
  }
}

}  // namespace rbdluks
