// FileImage: a RawImage over a local file, with the same layout as on RBD. Used for cryptsetup
// interoperability and offline work. Metadata lives in a sidecar JSON file "PATH.rbd-luks-meta".
#pragma once

#include <memory>
#include <string>

#include "raw_image.h"

namespace rbdluks {

enum class OpenMode { read_only, read_write };

Result<std::unique_ptr<RawImage>> open_file_image(const std::string& path, OpenMode mode);

// Creates (or truncates to) a sparse file of the given size.
Result<std::unique_ptr<RawImage>> create_file_image(const std::string& path, uint64_t size);

}  // namespace rbdluks
