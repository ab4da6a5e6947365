// In-place decryption: a LUKS volume (LUKS1 or LUKS2) whose header is at the start of its image
// becomes the plain image of its data, P bytes with the data at offset 0, as `export` of the volume
// would write it; crash-safe at every write, resumable by running it again.
//
// cryptsetup 2.6 decrypts only volumes with a detached header: the data must move down over the
// header, so the header, which holds the keys and the progress, needs another place. Here that
// place is the image itself: it grows by the data offset D, and the first D bytes (the header and
// its keyslots) are copied past the old end. The image metadata key kDecryptionMarkerKey
// (luks_volume.h) says where the copy is and how far the data has moved. Then, a step at a time,
// D bytes or fewer of ciphertext at D + k are decrypted into k. A step never writes over data
// that a later step reads (it writes below D + k), so a step the crash interrupted is simply done
// again. At the end the image is cut back to P bytes, which takes the copy of the header, and the
// marker goes. Meanwhile the header at the start is wiped: no reader finds a volume there, and
// rbd-luks says that a decryption is under way.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "raw_image.h"
#include "reencryption.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks {

// Decrypts the volume on image in place, or finishes the decryption its metadata records;
// passphrase gives what opens a keyslot, asked for only when the run needs the key (not when only
// the end of a run is left, whose key reference may be gone already). The image metadata keys in volume_keys (a key
// reference, ...) go at the end with the marker: they describe a volume the image no longer holds. The caller holds the
// image's header lock. options: hotzone_bytes (no more than D is used), threads, io_bytes, progress, stop_requested,
// check_alone. Errors: Errc::bad_key when the passphrase opens no keyslot; Errc::bad_header when the image holds no
// volume and records no decryption; Errc::usage for a volume in the middle of a reencryption or an encryption;
// Errc::unsupported for a volume rbd-luks cannot open; Errc::failure "stopped" when stop_requested ended it early.
Result<ReencryptReport> decrypt_volume(RawImage& image, const std::function<Result<SecureBuffer>()>& passphrase,
                                       const ReencryptOptions& options, const std::vector<std::string>& volume_keys);

// Whether the image records a decryption that has not finished.
Result<bool> decryption_started(RawImage& image);

// Errc::usage, saying to finish it, when the image records a decryption that has not finished: for
// the commands that rewrite an image, which must not touch it then (its header may still be at the
// start, but its copy past the end is the one the decryption goes on with).
Status refuse_recorded_decryption(RawImage& image);

}  // namespace rbdluks
