// RawImage's defaults: write_zeroes writes zeros in bounded chunks, and everything may hold data.
#include "raw_image.h"

#include <algorithm>
#include <vector>

namespace rbdluks {

Status RawImage::write_zeroes(uint64_t offset, uint64_t length) {
  const std::vector<uint8_t> zeros(static_cast<size_t>(std::min<uint64_t>(length, 1 << 20)));
  while (length > 0) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(length, zeros.size()));
    RL_TRY(write(offset, std::span(zeros).first(n)));
    offset += n;
    length -= n;
  }
  return {};
}

Result<std::vector<Extent>> RawImage::allocated_extents(uint64_t offset, uint64_t length) {
  return std::vector<Extent>{{offset, length}};
}

}  // namespace rbdluks
