// LuksVolume: one LUKS header (version 1 or 2) on a RawImage, seen the same way whatever its version.
//
// This is what the CLI and the data path use: the layout (cipher, sector size, data offset), the
// keyslots, and the operations on them. Every operation that changes the header writes it back
// crash-safely before returning, or leaves the image exactly as it was when it fails.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kdf.h"
#include "raw_image.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

struct KeyslotInfo {
  int id = 0;
  bool active = false;
  // An active LUKS2 keyslot whose digest covers no data segment (cryptsetup luksAddKey --unbound):
  // it holds some key, never the volume key, and never opens the volume.
  bool unbound = false;
  KdfParams kdf;  // meaningful when active
};

struct VolumeLayout {
  int version = 2;  // 1 or 2
  std::string uuid;
  std::string cipher = "aes-xts-plain64";  // cipher-mode-iv, cryptsetup's spelling
  uint32_t key_bytes = 64;                 // volume key size
  uint32_t sector_size = 4096;             // encryption sector size of the data
  uint64_t data_offset = 0;                // bytes from the image start to plaintext offset 0
  std::optional<uint64_t> data_size;       // fixed data segment size, or nullopt for "dynamic"
};

struct UnlockedKey {
  SecureBuffer volume_key;
  int keyslot = -1;
};

class LuksVolume {
 public:
  virtual ~LuksVolume() = default;

  virtual const VolumeLayout& layout() const = 0;
  virtual std::vector<KeyslotInfo> keyslots() const = 0;

  // Errc::unsupported saying why, for a valid header that uses something rbd-luks does not implement
  // (another cipher or hash, an IV offset, an unknown KDF or mandatory requirement). Such a volume
  // can be described but not opened or changed: open, add_keyslot and remove_keyslot fail with it.
  virtual Status supported() const = 0;

  // Tries the given keyslot, or every active keyslot in priority order; Errc::bad_key when none opens.
  virtual Result<UnlockedKey> open(std::span<const uint8_t> passphrase, std::optional<int> keyslot = {}) const = 0;

  // True when volume_key is this volume's key (checked against the stored digest).
  virtual bool verify_volume_key(std::span<const uint8_t> volume_key) const = 0;

  // Adds a keyslot for passphrase holding volume_key (which must verify); returns its id.
  virtual Result<int> add_keyslot(std::span<const uint8_t> volume_key, std::span<const uint8_t> passphrase,
                                  const KdfRequest& kdf, std::optional<int> keyslot = {}) = 0;

  // Deactivates a keyslot and overwrites its key material area.
  virtual Status remove_keyslot(int keyslot) = 0;

  // The header without any secret, as JSON (for `dump --json`) and as luksDump-like text.
  virtual nlohmann::json describe() const = 0;
  virtual std::string describe_text() const = 0;
};

// For describe() and describe_text(): why the volume cannot be opened (JSON null when it can), and a
// luksDump-style "Unsupported:" line ending in a newline (empty when it can).
nlohmann::json unsupported_reason(const LuksVolume& volume);
std::string unsupported_line(const LuksVolume& volume);

struct FormatOptions {
  int version = 2;
  std::string cipher = "aes-xts-plain64";
  uint32_t key_bytes = 64;
  uint32_t sector_size = 4096;          // LUKS2 only; LUKS1 is always 512
  std::optional<uint64_t> data_offset;  // default: 16 MiB for LUKS2 and 4 MiB for LUKS1, like librbd
  KdfRequest kdf;
  std::optional<std::string> uuid;  // random when unset
};

// The image metadata key of a decryption in place that has not finished (common/reencrypt/
// decryption.h). While it is set, the volume's header is not at offset 0 any more.
inline constexpr const char* kDecryptionMarkerKey = "rbd-luks.decrypt";

// Reads the header at offset 0 of image and returns the matching implementation.
// Errc::bad_header when there is no valid header, with the reason; Errc::failure, saying so, when
// the image holds a decryption under way instead.
Result<std::unique_ptr<LuksVolume>> load_luks(RawImage& image);

// Whether the image starts with a LUKS magic (either header copy's, any version), valid or not: an
// image that may hold a volume, which commands that write a header must not take for empty.
bool holds_luks_magic(RawImage& image);

// Writes a fresh header with keyslot 0 for passphrase. On failure the image is unchanged.
Result<std::unique_ptr<LuksVolume>> format_luks(RawImage& image, const FormatOptions& options,
                                                std::span<const uint8_t> volume_key,
                                                std::span<const uint8_t> passphrase);

}  // namespace rbdluks
