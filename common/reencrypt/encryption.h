// In-place encryption of a plaintext image: N bytes of plaintext become a LUKS2 volume of the same
// N bytes with its data at the data offset S (16 MiB by default), as `create` + `import` of the same
// bytes would make it; crash-safe at every write, resumable by rbd-luks and, on files, by cryptsetup.
//
// This is cryptsetup 2.6's `reencrypt --encrypt --reduce-device-size 2S` (luks2_reencrypt_state.h,
// "encryption"), on an image first grown by 2S: the first S bytes of plaintext are copied to its
// end, the header takes their place, the rest moves up by S, encrypted, one hotzone at a time from
// the end down, and the first S bytes move last. At the end the image is cut back to N + S bytes.
//
// Before the header exists, the state is the image metadata key "rbd-luks.encrypt" (the plaintext
// size, S, and whether the first S bytes were copied), written before the image grows; after the
// end it tells a rerun that the image still has to be cut back.
#pragma once

#include <cstdint>
#include <span>

#include "luks_volume.h"
#include "raw_image.h"
#include "reencryption.h"
#include "result.h"

namespace rbdluks {

// Starts the encryption of the plaintext image (format: cipher, key size, sector size, KDF, data
// offset, uuid; LUKS2 only), or finishes one that was interrupted, its own or one cryptsetup began;
// passphrase opens the new keyslot. The caller holds the image's header lock. Errors: Errc::usage
// for an image that is a LUKS volume already (or holds a reencryption), or whose size is not a
// whole number of sectors or is smaller than the data offset; Errc::bad_key when resuming with a
// passphrase that opens no keyslot; Errc::failure "stopped" when stop_requested ended it early.
Result<ReencryptReport> encrypt_luks2(RawImage& image, std::span<const uint8_t> passphrase, const FormatOptions& format,
                                      const ReencryptOptions& options);

// Whether the image records an encryption that has not finished (its metadata key, or a header
// in the encryption state): a rerun needs the volume's passphrase, not a new key.
Result<bool> encryption_started(RawImage& image);

}  // namespace rbdluks
