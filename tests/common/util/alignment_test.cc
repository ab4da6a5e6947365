// round_up / round_down at the edges: zero, exact multiples, one either side, an alignment that is
// not a power of two (the helpers divide rather than mask, so any alignment works) and the largest
// offsets an image has.
#include "alignment.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace rbdluks {
namespace {

TEST(Alignment, RoundUp) {
  EXPECT_EQ(round_up(0, 4096), 0u);
  EXPECT_EQ(round_up(1, 4096), 4096u);
  EXPECT_EQ(round_up(4095, 4096), 4096u);
  EXPECT_EQ(round_up(4096, 4096), 4096u);
  EXPECT_EQ(round_up(4097, 4096), 8192u);
  EXPECT_EQ(round_up(4000 * 3 + 1, 4000), 16000u);
  EXPECT_EQ(round_up(17, 1), 17u);
  // The largest 4 KiB-aligned offset below 2^64 is its own round-up.
  constexpr uint64_t kTop = UINT64_MAX / 4096 * 4096;
  EXPECT_EQ(round_up(kTop - 4095, 4096), kTop);
}

TEST(Alignment, RoundDown) {
  EXPECT_EQ(round_down(0, 512), 0u);
  EXPECT_EQ(round_down(511, 512), 0u);
  EXPECT_EQ(round_down(512, 512), 512u);
  EXPECT_EQ(round_down(1023, 512), 512u);
  EXPECT_EQ(round_down(4000 * 3 - 1, 4000), 8000u);
  EXPECT_EQ(round_down(UINT64_MAX, 4096), UINT64_MAX - 4095);
}

}  // namespace
}  // namespace rbdluks
