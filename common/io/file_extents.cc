// SEEK_DATA/SEEK_HOLE walk over a file's range.
#include "file_extents.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace rbdluks {

Result<std::vector<Extent>> file_data_extents(int fd, uint64_t offset, uint64_t length, const std::string& name) {
  std::vector<Extent> extents;
  const uint64_t end = offset + length;
  uint64_t at = offset;
  while (at < end) {
    const off_t data = lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // nothing but a hole from here to the end of the file
      if (errno == EINVAL || errno == ESPIPE) return std::vector<Extent>{{offset, length}};
      return errno_error("find data in " + name);
    }
    const uint64_t data_begin = static_cast<uint64_t>(data);
    if (data_begin >= end) break;
    const off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return errno_error("find holes in " + name);
    const uint64_t data_end = std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    extents.push_back({data_begin, data_end - data_begin});
    at = data_end;
  }
  return extents;
}

}  // namespace rbdluks
