// Cipher specifications as LUKS spells them: "aes-xts-plain64" (LUKS2, and LUKS1's cipher_name +
// "-" + cipher_mode). Only AES-XTS with plain64 tweaks is supported; anything else is reported as
// Errc::unsupported naming the spec.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "result.h"
#include "xts_cipher.h"

namespace rbdluks {

struct CipherSpec {
  std::string cipher;  // "aes"
  std::string mode;    // "xts"
  std::string iv;      // "plain64"
  std::string to_string() const { return cipher + "-" + mode + "-" + iv; }
};

Result<CipherSpec> parse_cipher_spec(std::string_view spec);

// True when spec is supported and key_bytes is a valid key size for it (32 or 64 for AES-XTS).
Status check_cipher_key_size(std::string_view spec, size_t key_bytes);

// The cipher for a supported spec and key.
Result<std::unique_ptr<XtsCipher>> make_cipher(std::string_view spec, std::span<const uint8_t> key,
                                               CipherBackend backend = CipherBackend::best);

}  // namespace rbdluks
