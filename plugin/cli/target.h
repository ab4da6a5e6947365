// Targets of the rbd-luks command: "file:PATH", "rbd:POOL[/NAMESPACE]/IMAGE[@SNAP]" and the short
// "POOL/IMAGE" form, parsed and opened as a RawImage. RBD targets connect with the global options
// -c/--conf, --id or -n/--name, --keyring and --cluster, over CEPH_CONF and CEPH_ARGS.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "command_line.h"
#include "file_image.h"
#include "raw_image.h"
#include "rbd_connection.h"
#include "rbd_image.h"
#include "result.h"

namespace rbdluks::cli {

struct Target {
  enum class Kind { file, rbd } kind = Kind::file;
  std::string path;  // file
  std::string pool, name_space, image;
  std::optional<std::string> snapshot;
  std::string spec;  // as the user wrote it, for messages
};

Result<Target> parse_target(const std::string& text);

// A cluster connection from the global options (-c, --id/--name, --keyring, --cluster).
Result<std::shared_ptr<RbdConnection>> connect_for(const CommandLine& cl);

// Opens an existing target; snapshots are always read-only.
Result<std::unique_ptr<RawImage>> open_target(const CommandLine& cl, const Target& target, OpenMode mode);

// The same for a target that must be an RBD image (Errc::usage otherwise), for what needs librbd
// itself: `command` names the command in the error.
Result<std::unique_ptr<RbdImage>> open_rbd_target(const CommandLine& cl, const Target& target, OpenMode mode,
                                                  const std::string& command);

// Creates a target of raw_size bytes; fails if it already exists (files: unless --force; an existing
// RBD image is never replaced, --force or not: `format` reuses it).
Result<std::unique_ptr<RawImage>> create_target(const CommandLine& cl, const Target& target, uint64_t raw_size);

// For `format`, called after its check for an existing LUKS header: refuses (unless --force) an RBD
// image that has ever been written, since a new header would destroy data that is not ours. Files
// are not checked: peers such as cryptsetup's tests prepare them with dd.
Status refuse_non_empty_image(const CommandLine& cl, const Target& target, RawImage& image);

// Refuses (unless --force) an RBD image that another client has open, for changes that client
// would not see: `format` (its writes would be encrypted with a key that no longer exists) and
// `preload disable`. `action` ends the message: "use --force to <action> anyway".
Status refuse_image_in_use(const CommandLine& cl, RawImage& image, const std::string& action);

// Refuses an RBD image that another client has open, with no way around it; `why` ends the message.
Status refuse_other_clients(RawImage& image, const std::string& why);

}  // namespace rbdluks::cli
