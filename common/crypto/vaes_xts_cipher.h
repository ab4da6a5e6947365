// The VAES XtsCipher backends: VAES and VPCLMULQDQ on 256-bit registers (AVX2 width, 2 blocks per
// register) and on 512-bit registers (AVX-512, 4 blocks per register), 16 or 32 blocks in flight.
// Reached through make_xts_cipher.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "xts_cipher.h"

namespace rbdluks {

// key: 32 or 64 bytes (checked by make_xts_cipher). Only call when cpu_features() has aesni,
// pclmulqdq, avx2, vaes and vpclmulqdq; for vaes512 also avx512f, avx512vl and avx512bw.
std::unique_ptr<XtsCipher> make_vaes256_xts_cipher(std::span<const uint8_t> key);
std::unique_ptr<XtsCipher> make_vaes512_xts_cipher(std::span<const uint8_t> key);

}  // namespace rbdluks
