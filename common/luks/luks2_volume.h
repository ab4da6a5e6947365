// Luks2Volume: the LuksVolume implementation for LUKS2 headers (luks2_header + keyslot_material).
#pragma once

#include <memory>
#include <span>

#include "luks_volume.h"

namespace rbdluks {

Result<std::unique_ptr<LuksVolume>> load_luks2(RawImage& image);
Result<std::unique_ptr<LuksVolume>> format_luks2(RawImage& image, const FormatOptions& options,
                                                 std::span<const uint8_t> volume_key,
                                                 std::span<const uint8_t> passphrase);

}  // namespace rbdluks
