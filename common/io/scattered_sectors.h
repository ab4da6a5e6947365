// Scattered sectors: decrypting a run of sectors that sits in one list of buffers straight into
// another list of buffers, in one pass over memory. The dispatch layer reads ciphertext as librbd
// received it (a bufferlist, possibly in several pieces) and the caller wants plaintext in its own
// iovecs; copying either side into a contiguous buffer first would cost a second pass.
#pragma once

#include <cstdint>
#include <span>

#include "sector_codec.h"
#include "xts_cipher.h"

namespace rbdluks {

// Largest LUKS sector size, so a sector that straddles two buffers fits in a stack buffer.
inline constexpr uint32_t kMaxSectorSize = 4096;

// ciphertext holds the span's sectors [span.begin, span.end), concatenated; plaintext receives the
// request's bytes [span.request_begin, span.request_end), concatenated. Holes (all-zero ciphertext
// sectors) read as zeros. Whole sectors that lie in one buffer on both sides are decrypted in place
// of a copy; the rest (edges of the request, sectors split between buffers) one at a time.
void decrypt_scattered(const XtsCipher& cipher, const SectorSpan& span,
                       std::span<const std::span<const uint8_t>> ciphertext,
                       std::span<const std::span<uint8_t>> plaintext);

}  // namespace rbdluks
