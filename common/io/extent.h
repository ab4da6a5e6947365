// Extent: a byte range of an image, and the step from where an image's raw bytes hold data to where
// its plaintext does. Thin images are told apart from full ones by these lists: what a copy reads,
// what `du` counts, what import zeroes instead of skipping.
#pragma once

#include <cstdint>
#include <vector>

namespace rbdluks {

struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;

  uint64_t end() const { return offset + length; }
  bool operator==(const Extent&) const = default;
};

// The plaintext extents inside [offset, offset + length) whose sectors may hold data, given the raw
// extents that hold data (sorted, not overlapping) and where the data segment starts. Each is
// widened to whole sectors, so a sector that is partly allocated counts as allocated, then clipped
// to the request; neighbours that touch are merged.
std::vector<Extent> plaintext_extents(const std::vector<Extent>& raw, uint64_t data_offset, uint32_t sector_size,
                                      uint64_t offset, uint64_t length);

// Appends [begin, end) to extents sorted by offset, merged into the last one where they touch or
// overlap; an empty range adds nothing. begin must not lie before the last extent's offset.
void append_extent(std::vector<Extent>& extents, uint64_t begin, uint64_t end);

// The bytes the extents cover.
uint64_t total_length(const std::vector<Extent>& extents);

// Whether any of the extents shares a byte with [begin, end).
bool overlaps(const std::vector<Extent>& extents, uint64_t begin, uint64_t end);

}  // namespace rbdluks
