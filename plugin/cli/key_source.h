// Where the CLI gets a volume's passphrase: --passphrase-file, --key-ref REF (a keyring), or the key
// reference the image's metadata recorded at format time; and, for new volumes, --new-key (a fresh
// random key stored in a keyring). See docs/cli.md and docs/keyrings.md.
#pragma once

#include <optional>
#include <string>

#include "command_line.h"
#include "keyring.h"
#include "keyring_registry.h"
#include "raw_image.h"
#include "result.h"
#include "secure_buffer.h"

namespace rbdluks::cli {

// The keyring environment of this command line: Ceph connection and OpenStack settings on demand.
KeyringEnvironment keyring_environment(const CommandLine& cl);

// The passphrase that opens `image`. `option` picks another file option (--new-passphrase-file)
// when the caller wants that one; it takes only a file.
Result<SecureBuffer> passphrase_for(const CommandLine& cl, RawImage& image);
Result<SecureBuffer> passphrase_from_file_option(const CommandLine& cl, const std::string& option);

// The passphrase for a volume about to be formatted, and what to record in its metadata.
struct NewVolumeKey {
  SecureBuffer passphrase;
  std::optional<KeyReference> reference;  // recorded in the image metadata
  PassphraseEncoding encoding = PassphraseEncoding::raw;
  SecureBuffer created_key;  // --new-key: the key this run stored (empty otherwise)
};
Result<NewVolumeKey> key_for_new_volume(const CommandLine& cl, const std::string& target_name);

// After a successful format: records (or clears) the key reference in the image metadata.
Status record_key_reference(RawImage& image, const NewVolumeKey& key);

// After a failed format: deletes a key that --new-key created for it, if it still holds that key.
void discard_new_key(const CommandLine& cl, const NewVolumeKey& key);

}  // namespace rbdluks::cli
