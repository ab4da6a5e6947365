// Key references and passphrase encodings.
#include "keyring.h"

namespace rbdluks {

Result<KeyReference> KeyReference::parse(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Error(Errc::usage,
                 "key reference '" + text + "' is not SCHEME:LOCATOR (barbican:UUID, config-key:KEY or file:PATH)");
  }
  return KeyReference{text.substr(0, colon), text.substr(colon + 1)};
}

Result<PassphraseEncoding> parse_passphrase_encoding(const std::string& text) {
  if (text == "raw") return PassphraseEncoding::raw;
  if (text == "hex") return PassphraseEncoding::hex;
  if (text == "hex-mangled") return PassphraseEncoding::hex_mangled;
  return Error(Errc::usage, "passphrase encoding '" + text + "' is not raw, hex or hex-mangled");
}

const char* passphrase_encoding_name(PassphraseEncoding encoding) {
  switch (encoding) {
    case PassphraseEncoding::raw:
      return "raw";
    case PassphraseEncoding::hex:
      return "hex";
    case PassphraseEncoding::hex_mangled:
      return "hex-mangled";
  }
  return "raw";
}

SecureBuffer encode_passphrase(std::span<const uint8_t> key, PassphraseEncoding encoding) {
  if (encoding == PassphraseEncoding::raw) return SecureBuffer::copy_of(key);
  static constexpr char kDigits[] = "0123456789abcdef";
  SecureBuffer out(key.size() * 2);
  size_t n = 0;
  for (const uint8_t byte : key) {
    // The mangled form drops the high digit when it is zero.
    if (encoding == PassphraseEncoding::hex || (byte >> 4) != 0) out[n++] = static_cast<uint8_t>(kDigits[byte >> 4]);
    out[n++] = static_cast<uint8_t>(kDigits[byte & 0xf]);
  }
  out.shrink(n);
  return out;
}

}  // namespace rbdluks
