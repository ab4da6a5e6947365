// KeyReferencePolicy: which key references a client accepts from an image's metadata. Whoever can
// write the image can change its metadata, so a client that opens images it does not fully trust
// says which keyrings (and, for file: references, which directories) may supply their keys.
//
// Written as a comma-separated list, the same for the CLI (--accept-key-refs), the C API and the
// C++ API: a scheme ("barbican", "config-key", "file") accepts every reference of that scheme;
// "file:DIR" (DIR absolute) accepts a file: reference that names a file directly in DIR, as the
// path is written (no "..", no subdirectories; DIR itself is the client's choice and may be or
// contain a symlink). E.g. "config-key,barbican" or "barbican,file:/etc/rbd-luks/keys".
//
// The policy is plain text matching and lives below the keyring registry (plugin/keyring), which
// alone knows the schemes and hands them to parse (parse_key_reference_policy there), so the
// parser is tested without Ceph (tests/fuzz/).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "keyring.h"
#include "result.h"

namespace rbdluks {

class KeyReferencePolicy {
 public:
  // Accepts every reference (the policy of a client that trusts whoever writes its images).
  KeyReferencePolicy() = default;

  // Errc::usage for an empty list, a scheme not in keyring_schemes or a relative directory.
  static Result<KeyReferencePolicy> parse(const std::string& text, const std::vector<std::string>& keyring_schemes);

  // Errc::key_unavailable naming the reference, `where` it came from and what is accepted.
  Status check(const KeyReference& reference, const std::string& where) const;

 private:
  struct Accepted {
    std::vector<std::string> schemes;
    std::vector<std::string> file_directories;
    std::string text;  // as given, for messages
  };
  std::optional<Accepted> accepted_;  // nullopt: everything
};

}  // namespace rbdluks
