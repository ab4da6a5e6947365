// Luks1Volume: a LUKS1 volume on a RawImage, byte-compatible with cryptsetup 2.6 (lib/luks1/keymanage.c),
// librbd's `rbd encryption format IMG luks1` and `qemu-img create -f luks`.
//
// LUKS1 has one header and no journal, so updates are ordered for crash safety: adding a keyslot
// writes its key material before the header that activates it; removing one writes the header that
// deactivates it before wiping the material. The header is always written with a single write call.
#pragma once

#include <memory>
#include <span>

#include "luks1_header.h"
#include "luks_volume.h"

namespace rbdluks {

class Luks1Volume final : public LuksVolume {
 public:
  Luks1Volume(RawImage& image, Luks1Header header);

  const VolumeLayout& layout() const override { return layout_; }
  std::vector<KeyslotInfo> keyslots() const override;
  Status supported() const override;
  Result<UnlockedKey> open(std::span<const uint8_t> passphrase, std::optional<int> keyslot = {}) const override;
  bool verify_volume_key(std::span<const uint8_t> volume_key) const override;
  Result<int> add_keyslot(std::span<const uint8_t> volume_key, std::span<const uint8_t> passphrase,
                          const KdfRequest& kdf, std::optional<int> keyslot = {}) override;
  Status remove_keyslot(int keyslot) override;
  nlohmann::json describe() const override;
  std::string describe_text() const override;

  const Luks1Header& header() const { return header_; }

 private:
  Result<SecureBuffer> try_keyslot(size_t slot, std::span<const uint8_t> passphrase) const;
  Status write_header(const Luks1Header& header);

  RawImage& image_;
  Luks1Header header_;
  VolumeLayout layout_;
};

// Reads and validates the LUKS1 header at offset 0 of image (Errc::bad_header / Errc::unsupported).
Result<std::unique_ptr<LuksVolume>> load_luks1(RawImage& image);

// Writes a fresh LUKS1 header with keyslot 0 for passphrase, laid out as cryptsetup does (keyslot
// areas from 4 KiB, 4 KiB aligned; payload at options.data_offset, default 4 MiB like librbd). The
// other keyslot areas are overwritten with random data. Everything is checked and derived before the
// first write, so a failed check leaves the image untouched; a failed write is undone by writing
// back what was there.
Result<std::unique_ptr<LuksVolume>> format_luks1(RawImage& image, const FormatOptions& options,
                                                 std::span<const uint8_t> volume_key,
                                                 std::span<const uint8_t> passphrase);

}  // namespace rbdluks
