// Key references and passphrase encodings.
#include "keyring.h"

namespace rbdluks {

Result<KeyReference> KeyReference::parse(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    return Error(Errc::usage, "key reference '" + text +
                                  "' is not SCHEME:LOCATOR (barbican:UUID, config-key:KEY or file:PATH)");
  }
  return KeyReference{text.substr(0, colon), text.substr(colon + 1)};
}

Result<PassphraseEncoding> parse_passphrase_encoding(const std::string& text) {
  if (text == "raw") return PassphraseEncoding::raw;
  if (text == "hex") return PassphraseEncoding::hex;
  return Error(Errc::usage, "passphrase encoding '" + text + "' is not raw or hex");
}

const char* passphrase_encoding_name(PassphraseEncoding encoding) {
  return encoding == PassphraseEncoding::hex ? "hex" : "raw";
}

SecureBuffer encode_passphrase(std::span<const uint8_t> key, PassphraseEncoding encoding) {
  if (encoding == PassphraseEncoding::raw) return SecureBuffer::copy_of(key);
  static constexpr char kDigits[] = "0123456789abcdef";
  SecureBuffer out(key.size() * 2);
  for (size_t i = 0; i < key.size(); ++i) {
    out[2 * i] = static_cast<uint8_t>(kDigits[key[i] >> 4]);
    out[2 * i + 1] = static_cast<uint8_t>(kDigits[key[i] & 0xf]);
  }
  return out;
}

}  // namespace rbdluks
