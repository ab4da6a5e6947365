// Where a local file holds data: the filesystem's own map (SEEK_DATA/SEEK_HOLE), so that copies
// skip the holes of sparse files instead of reading gigabytes of zeros.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "extent.h"
#include "result.h"

namespace rbdluks {

// The extents of [offset, offset + length) of the open file fd that hold data, in order. A file
// system that keeps no such map (or a pipe) reports the whole range. `name` is for messages.
Result<std::vector<Extent>> file_data_extents(int fd, uint64_t offset, uint64_t length, const std::string& name);

}  // namespace rbdluks
