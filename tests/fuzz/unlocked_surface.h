// What an image's header reaches in rbd-luks before any passphrase is tried: load_luks (the entry
// `rbd-luks dump`, `check`, open and the library share), which parses and validates the header and
// bounds its KDF costs, then everything that describes the loaded volume (`dump` as text and as
// JSON, the keyslot list, why it cannot be opened). The LUKS harnesses call this on the image they
// build from their input. No KDF runs and no key material is touched: those are what the cost
// limits guard, and they cost seconds per input.
#pragma once

#include "raw_image.h"

namespace rbdluks::fuzz {

void load_and_describe(RawImage& image);

}  // namespace rbdluks::fuzz
