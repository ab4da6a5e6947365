// X86XtsCipher: the XtsCipher of the x86-64 backends (AES-NI, VAES on YMM, VAES on ZMM): the round
// keys plus the backend's kernel entry point. Reached through make_xts_cipher.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "xts_cipher.h"
#include "xts_round_keys.h"

namespace rbdluks {

// A backend's whole-run entry point: in and out are the same whole sectors, or as many that do not
// overlap (checked before the call).
using XtsKernel = void (*)(const XtsRoundKeys& keys, const uint8_t* in, uint8_t* out, size_t bytes, size_t sector_size,
                           uint64_t first_iv, bool encrypt);

class X86XtsCipher final : public XtsCipher {
 public:
  // key: 32 or 64 bytes. name must outlive the cipher (a string literal).
  X86XtsCipher(std::span<const uint8_t> key, XtsKernel kernel, std::string_view name)
      : keys_(key), kernel_(kernel), name_(name) {}

  using XtsCipher::decrypt;
  using XtsCipher::encrypt;
  void encrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
               uint64_t first_iv) const override;
  void decrypt(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size,
               uint64_t first_iv) const override;
  std::string_view backend_name() const override { return name_; }

 private:
  void run(std::span<const uint8_t> in, std::span<uint8_t> out, size_t sector_size, uint64_t first_iv,
           bool encrypt) const;

  XtsRoundKeys keys_;
  XtsKernel kernel_;
  std::string_view name_;
};

}  // namespace rbdluks
