// Parsing LUKS cipher specifications; only aes-xts-plain64 is supported.
#include "cipher_spec.h"

#include <string>

namespace rbdluks {
Result<CipherSpec> parse_cipher_spec(std::string_view spec) {
  if (spec != "aes-xts-plain64") {
    return Error(Errc::unsupported, "cipher " + std::string(spec) + " is not supported (only aes-xts-plain64)");
  }
  return CipherSpec{"aes", "xts", "plain64"};
}

Status check_cipher_key_size(std::string_view spec, size_t key_bytes) {
  RL_TRY(parse_cipher_spec(spec));
  if (key_bytes != 32 && key_bytes != 64) {
    return Error(Errc::unsupported, "cipher " + std::string(spec) + " with a " + std::to_string(key_bytes * 8) +
                                        "-bit key is not supported (256 or 512 bits)");
  }
  return {};
}

Result<std::unique_ptr<XtsCipher>> make_cipher(std::string_view spec, std::span<const uint8_t> key,
                                               CipherBackend backend) {
  RL_TRY(check_cipher_key_size(spec, key.size()));
  return make_xts_cipher(key, backend);
}

}  // namespace rbdluks
