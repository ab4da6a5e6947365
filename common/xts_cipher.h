// XtsCipher: the cipher-backend interface. AES-XTS over runs of whole sectors, in place.
//
// Tweaks follow dm-crypt's "plain64" IV in 512-byte units, which is what cryptsetup (LUKS1 and
// LUKS2, any sector size) and librbd's native encryption use: the sector that starts at byte offset
// X of the encrypted area gets the little-endian 64-bit tweak X / 512, zero-padded to 16 bytes.
// So consecutive 4096-byte sectors advance the tweak by 8.
//
// Backends: Crypto++ (portable, the reference) and, later, an accelerated x86-64 one. Instances are
// immutable after creation and safe to use from many threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "result.h"

namespace rbdluks {

class XtsCipher {
 public:
  virtual ~XtsCipher() = default;

  // data.size() must be a multiple of sector_size (512, 1024, 2048 or 4096). first_iv is the tweak
  // of the first sector (byte offset / 512); sector i gets first_iv + i * sector_size / 512.
  virtual void encrypt(std::span<uint8_t> data, size_t sector_size, uint64_t first_iv) const = 0;
  virtual void decrypt(std::span<uint8_t> data, size_t sector_size, uint64_t first_iv) const = 0;

  // Human-readable backend name, e.g. "portable (Crypto++)".
  virtual std::string_view backend_name() const = 0;
};

enum class CipherBackend { best, portable };

// key is the full XTS key: 32 bytes (AES-128-XTS) or 64 bytes (AES-256-XTS).
Result<std::unique_ptr<XtsCipher>> make_xts_cipher(std::span<const uint8_t> key,
                                                   CipherBackend backend = CipherBackend::best);

}  // namespace rbdluks
