// make_xts_cipher: the one place that picks an XtsCipher backend.
#include "xts_cipher.h"

#include <string>

#include "cryptopp_xts_cipher.h"

namespace rbdluks {

Result<std::unique_ptr<XtsCipher>> make_xts_cipher(std::span<const uint8_t> key, CipherBackend backend) {
  if (key.size() != 32 && key.size() != 64) {
    return Error(Errc::unsupported,
                 "AES-XTS key of " + std::to_string(key.size() * 8) + " bits is not supported (256 or 512 bits)");
  }
  switch (backend) {
    case CipherBackend::best:  // only the portable backend exists so far
    case CipherBackend::portable:
      return make_cryptopp_xts_cipher(key);
  }
  return Error(Errc::failure, "unknown cipher backend");
}

}  // namespace rbdluks
