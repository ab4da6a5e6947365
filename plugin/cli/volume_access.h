// How commands get at a volume: open the target, load its LUKS header, fetch the key from the key
// source given on the command line, unlock a keyslot and set up the plaintext data path.
#pragma once

#include <memory>
#include <string>

#include "command_line.h"
#include "encrypted_image.h"
#include "file_image.h"
#include "header_lock.h"
#include "kdf.h"
#include "luks_volume.h"
#include "raw_image.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks::cli {

struct LoadedVolume {
  std::unique_ptr<RawImage> image;
  // Held by header changes from before the header was read; released (by hand, to see its errors,
  // or here, before the image closes) when the change is done.
  std::unique_ptr<HeaderLock> header_lock;
  std::unique_ptr<LuksVolume> volume;
};

struct UnlockedVolume {
  LoadedVolume loaded;
  UnlockedKey key;
  std::unique_ptr<EncryptedImage> data;
};

// The KDF the operator asked for with --pbkdf, --iter-time, --pbkdf-force-iterations, ...
Result<KdfRequest> kdf_request_from(const CommandLine& cl, int luks_version);

Result<LoadedVolume> load_volume(const CommandLine& cl, const std::string& target, OpenMode mode);
Result<UnlockedVolume> unlock_volume(const CommandLine& cl, const std::string& target, OpenMode mode);

// The same for a header change, `command` ("keyslot add"): the target opens read-write and its
// header lock is taken before the header is read, so the change applies to the header as it is
// now and no other client's change can come in between.
Result<LoadedVolume> load_volume_to_change(const CommandLine& cl, const std::string& target,
                                           const std::string& command);
Result<UnlockedVolume> unlock_volume_to_change(const CommandLine& cl, const std::string& target,
                                               const std::string& command);

// The header lock of an image opened read-write, for `command` (see load_volume_to_change).
Result<std::unique_ptr<HeaderLock>> lock_header_for(RawImage& image, const std::string& command);

}  // namespace rbdluks::cli
