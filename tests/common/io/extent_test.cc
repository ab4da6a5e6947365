// plaintext_extents: raw allocation shifted past the header, widened to sectors, clipped, merged.
#include "extent.h"

#include <gtest/gtest.h>

namespace rbdluks {
namespace {

constexpr uint64_t kMiB = 1 << 20;
using Extents = std::vector<Extent>;

TEST(PlaintextExtentsTest, HeaderObjectsNeverShowAndDataShiftsByTheOffset) {
  const Extents raw = {{0, 4 * kMiB}, {16 * kMiB, 4 * kMiB}, {24 * kMiB, 4 * kMiB}};
  EXPECT_EQ(plaintext_extents(raw, 16 * kMiB, 4096, 0, 32 * kMiB), (Extents{{0, 4 * kMiB}, {8 * kMiB, 4 * kMiB}}));
}

TEST(PlaintextExtentsTest, ClippedToTheRequest) {
  const Extents raw = {{16 * kMiB, 8 * kMiB}};
  EXPECT_EQ(plaintext_extents(raw, 16 * kMiB, 4096, kMiB, 2 * kMiB), (Extents{{kMiB, 2 * kMiB}}));
  EXPECT_EQ(plaintext_extents(raw, 16 * kMiB, 4096, 9 * kMiB, kMiB), Extents{});
}

TEST(PlaintextExtentsTest, PartlyAllocatedSectorsCountWholeAndNeighboursMerge) {
  // A data offset that is no multiple of the allocation unit: raw extents start inside sectors.
  const Extents raw = {{4096 + 100, 10}, {2 * 4096 + 4096 + 512, 512}};
  EXPECT_EQ(plaintext_extents(raw, 4096, 4096, 0, 16 * 4096), (Extents{{0, 4096}, {2 * 4096, 4096}}));
  const Extents touching = {{4096, 4096 + 1}, {3 * 4096 - 1, 2}};
  EXPECT_EQ(plaintext_extents(touching, 4096, 4096, 0, 16 * 4096), (Extents{{0, 3 * 4096}}));
}

TEST(PlaintextExtentsTest, TotalLength) {
  EXPECT_EQ(total_length({{0, 3}, {10, 5}}), 8u);
  EXPECT_EQ(total_length({}), 0u);
}

}  // namespace
}  // namespace rbdluks
