// Keyring: where volume passphrases live when they are not typed in: OpenStack Barbican, Ceph
// config-key, a local file. A key reference "SCHEME:LOCATOR" names one key; the image's metadata
// records it, so a client can open the image with no secret at hand.
//
// Every adapter returns Errc::key_unavailable (CLI exit 5) when the keyring refuses or cannot be
// reached, with a message that names the reference but never the key.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

struct KeyReference {
  std::string scheme;   // "barbican", "config-key", "file"
  std::string locator;  // secret UUID, config-key key, path

  static Result<KeyReference> parse(const std::string& text);
  std::string str() const { return scheme + ":" + locator; }
};

class Keyring {
 public:
  virtual ~Keyring() = default;

  // The key bytes stored under locator.
  virtual Result<SecureBuffer> fetch(const std::string& locator) = 0;

  // Stores a new key and returns the reference to it. `name` is the locator for keyrings whose
  // locators are chosen by the caller (config-key key, file path) and a display name for those that
  // choose their own (Barbican's secret UUID). Never overwrites an existing key; a success means
  // the keyring held exactly `key` under the reference when store() returned.
  virtual Result<KeyReference> store(std::span<const uint8_t> key, const std::string& name) = 0;

  // Undoes a store(): removes the key under locator unless it is no longer `key` (another writer
  // replaced it meanwhile), so that undoing a failed format never deletes a key that is not this
  // run's. A key that is already gone is not an error.
  virtual Status discard(const std::string& locator, std::span<const uint8_t> key) = 0;
};

// How fetched key bytes become the LUKS passphrase: as they are, as lowercase hex (OpenStack's
// convention: the passphrase of a Cinder volume is binascii.hexlify(key)), or in the "mangled" hex of
// volumes from before OpenStack Newton (each byte as hex(b) without "0x", so without a leading zero;
// os-brick still tries it when the normal form fails).
enum class PassphraseEncoding { raw, hex, hex_mangled };

Result<PassphraseEncoding> parse_passphrase_encoding(const std::string& text);
const char* passphrase_encoding_name(PassphraseEncoding encoding);
SecureBuffer encode_passphrase(std::span<const uint8_t> key, PassphraseEncoding encoding);

// Image metadata keys that record the key reference and its encoding.
inline constexpr const char* kKeyRefMetadataKey = "rbd-luks.key-ref";
inline constexpr const char* kPassphraseEncodingMetadataKey = "rbd-luks.passphrase-encoding";
// Set to "on" by `rbd-luks preload enable`: librbd_luks_preload.so decrypts the image.
inline constexpr const char* kPreloadMetadataKey = "rbd-luks.preload";
inline constexpr const char* kPreloadMetadataOn = "on";

}  // namespace rbdluks
