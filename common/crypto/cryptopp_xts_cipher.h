// The portable XtsCipher backend: AES from Crypto++ (which uses AES-NI when present) with the XTS
// tweak arithmetic done here. Reached through make_xts_cipher, which picks the backend.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "xts_cipher.h"

namespace rbdluks {

// key is a full XTS key whose size make_xts_cipher has already checked (32 or 64 bytes).
std::unique_ptr<XtsCipher> make_cryptopp_xts_cipher(std::span<const uint8_t> key);

}  // namespace rbdluks
