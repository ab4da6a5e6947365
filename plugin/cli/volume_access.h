// How commands get at a volume: open the target, load its LUKS header, fetch the key from the key
// source given on the command line, unlock a keyslot and set up the plaintext data path.
#pragma once

#include <memory>
#include <string>

#include "command_line.h"
#include "encrypted_image.h"
#include "file_image.h"
#include "kdf.h"
#include "luks_volume.h"
#include "raw_image.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks::cli {

struct LoadedVolume {
  std::unique_ptr<RawImage> image;
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

}  // namespace rbdluks::cli
