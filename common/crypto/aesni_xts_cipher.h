// The AES-NI XtsCipher backend: 128-bit SSE registers, 8 blocks in flight. For x86-64 CPUs with
// AES-NI, PCLMULQDQ and SSE4.1 but no VAES. Reached through make_xts_cipher.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "xts_cipher.h"

namespace rbdluks {

// key: 32 or 64 bytes (checked by make_xts_cipher). Only call when cpu_features() has aesni,
// pclmulqdq and sse41.
std::unique_ptr<XtsCipher> make_aesni_xts_cipher(std::span<const uint8_t> key);

}  // namespace rbdluks
