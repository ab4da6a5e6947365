// Raw extents to plaintext extents (shifted by the data offset, widened to sectors, clipped, merged), and
// the small sums and tests on extent lists.
#include "extent.h"

#include <algorithm>

namespace rbdluks {

std::vector<Extent> plaintext_extents(const std::vector<Extent>& raw, uint64_t data_offset, uint32_t sector_size,
                                      uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  const uint64_t request_end = offset + length;
  for (const Extent& e : raw) {
    if (e.end() <= data_offset) continue;  // the header and keyslots
    const uint64_t begin = std::max(e.offset, data_offset) - data_offset;
    const uint64_t end = e.end() - data_offset;
    const uint64_t first = std::max(begin / sector_size * sector_size, offset);
    const uint64_t last = std::min((end + sector_size - 1) / sector_size * sector_size, request_end);
    append_extent(out, first, last);
  }
  return out;
}

void append_extent(std::vector<Extent>& extents, uint64_t begin, uint64_t end) {
  if (begin >= end) return;
  if (!extents.empty() && extents.back().end() >= begin) {
    extents.back().length = std::max(extents.back().end(), end) - extents.back().offset;
  } else {
    extents.push_back({begin, end - begin});
  }
}

uint64_t total_length(const std::vector<Extent>& extents) {
  uint64_t sum = 0;
  for (const Extent& e : extents) sum += e.length;
  return sum;
}

bool overlaps(const std::vector<Extent>& extents, uint64_t begin, uint64_t end) {
  return std::any_of(extents.begin(), extents.end(),
                     [&](const Extent& e) { return e.offset < end && begin < e.end(); });
}

}  // namespace rbdluks
