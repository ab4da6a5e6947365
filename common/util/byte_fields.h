// Fixed-offset fields of on-disk headers (LUKS1 phdr, LUKS2 binary header): big-endian integers and
// NUL-terminated strings bounded by their field. Explicit offsets keep the layout independent of
// struct packing; callers have checked that the buffer holds the whole header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "result.h"

namespace rbdluks {

inline uint64_t load_be(std::span<const uint8_t> bytes, size_t offset, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | bytes[offset + i];
  return v;
}

inline void store_be(std::span<uint8_t> bytes, size_t offset, size_t width, uint64_t v) {
  for (size_t i = 0; i < width; ++i) bytes[offset + width - 1 - i] = static_cast<uint8_t>(v >> (8 * i));
}

// The string before the first NUL of a size-byte field; Errc::bad_header when the field has no NUL.
Result<std::string> load_string_field(std::span<const uint8_t> bytes, size_t offset, size_t size, const char* what);

// Copies value into a zeroed size-byte field; Errc::failure when it (plus its NUL) does not fit.
Status store_string_field(std::span<uint8_t> bytes, size_t offset, size_t size, const std::string& value,
                          const char* what);

}  // namespace rbdluks
