// XtsCipher: the cipher-backend interface. AES-XTS over runs of whole sectors, in place or from one
// buffer into another (so a write can encrypt straight from the caller's memory into the buffer
// librbd sends, and a read decrypt straight from the one librbd received into the caller's: one
// pass over memory instead of a copy and then a pass).
//
// Tweaks follow dm-crypt's "plain64" IV in 512-byte units, which is what cryptsetup (LUKS1 and
// LUKS2, any sector size) and librbd's native encryption use: the sector that starts at byte offset
// X of the encrypted area gets the little-endian 64-bit tweak X / 512, zero-padded to 16 bytes.
// So consecutive 4096-byte sectors advance the tweak by 8.
//
// Backends: Crypto++ (portable, the reference) and x86-64 kernels on AES-NI and VAES, chosen at run
// time from the CPU's features. Instances are immutable after creation and safe to use from many
// threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "result.h"

namespace rbdluks {

class XtsCipher {
 public:
  virtual ~XtsCipher() = default;

  // in.size() == out.size() must be a multiple of sector_size (512, 1024, 2048 or 4096); in and out
  // are the same bytes or do not overlap. first_iv is the tweak of the first sector (byte offset /
  // 512); sector i gets first_iv + i * sector_size / 512, modulo 2^64 like plain64.
  virtual void encrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
                       uint64_t first_iv) const = 0;
  virtual void decrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
                       uint64_t first_iv) const = 0;

  // In place.
  void encrypt(std::span<uint8_t> data, size_t sector_size, uint64_t first_iv) const {
    encrypt(data, data, sector_size, first_iv);
  }
  void decrypt(std::span<uint8_t> data, size_t sector_size, uint64_t first_iv) const {
    decrypt(data, data, sector_size, first_iv);
  }

  // Human-readable backend name, e.g. "portable (Crypto++)".
  virtual std::string_view backend_name() const = 0;
};

// best: the fastest backend this CPU supports, unless the environment variable
// RBD_LUKS_CIPHER_BACKEND names one (portable, aesni, vaes256 or vaes512; for tests and benchmarks).
// The others ask for one backend; make_xts_cipher fails if the CPU cannot run it.
enum class CipherBackend { best, portable, aesni, vaes256, vaes512 };

// key is the full XTS key: 32 bytes (AES-128-XTS) or 64 bytes (AES-256-XTS).
Result<std::unique_ptr<XtsCipher>> make_xts_cipher(std::span<const uint8_t> key,
                                                   CipherBackend backend = CipherBackend::best);

// The backends this CPU can run, fastest first (portable is always there, last).
std::vector<CipherBackend> supported_cipher_backends();

// The backend's short name as RBD_LUKS_CIPHER_BACKEND spells it ("best" for best).
std::string_view cipher_backend_id(CipherBackend backend);

}  // namespace rbdluks
