// plan_rmw: which 512-byte units a read-modify-write puts back, and how (rmw_plan.h).
#include "rmw_plan.h"

#include <gtest/gtest.h>

#include <vector>

namespace rbdluks {
namespace {

using Kind = RmwWrite::Kind;

struct Expected {
  Kind kind;
  uint64_t begin, end;
  bool operator==(const RmwWrite& w) const { return kind == w.kind && begin == w.begin && end == w.end; }
};

void expect_plan(const RmwPlan& plan, const std::vector<Expected>& expected) {
  ASSERT_EQ(plan.count, expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(expected[i] == plan.writes[i]) << "write " << i << ": " << static_cast<int>(plan.writes[i].kind) << " ["
                                               << plan.writes[i].begin << ", " << plan.writes[i].end << ")";
  }
}

constexpr uint32_t kAllUnits = 0xff;  // a 4 KiB sector read as a hole

TEST(RmwPlan, AlignedBlockInAWrittenSectorIsOneWholeWrite) {
  expect_plan(plan_rmw(cover_sectors(8192 + 512, 512, 4096), {0, 0}), {{Kind::whole, 8704, 9216}});
}

TEST(RmwPlan, AlignedBlockInAHoleFillsTheSectorsOtherUnits) {
  expect_plan(plan_rmw(cover_sectors(8192 + 512, 512, 4096), {kAllUnits, 0}), {{Kind::whole, 8704, 9216},
                                                                               {Kind::fill, 8192, 8704},
                                                                               {Kind::fill, 9216, 9728},
                                                                               {Kind::fill, 9728, 10240},
                                                                               {Kind::fill, 10240, 10752},
                                                                               {Kind::fill, 10752, 11264},
                                                                               {Kind::fill, 11264, 11776},
                                                                               {Kind::fill, 11776, 12288}});
}

TEST(RmwPlan, BytesInsideOneUnitAreOneCompare) {
  expect_plan(plan_rmw(cover_sectors(100, 100, 4096), {0, 0}), {{Kind::compare, 0, 512}});
  expect_plan(plan_rmw(cover_sectors(0, 100, 4096), {0, 0}), {{Kind::compare, 0, 512}});
  expect_plan(plan_rmw(cover_sectors(412, 100, 4096), {0, 0}), {{Kind::compare, 0, 512}});
}

TEST(RmwPlan, UnalignedEdgesAcrossSectorsAreComparesAroundOneWholeWrite) {
  // [4000, 12400): sectors 0 and 3 partial, 1 and 2 whole.
  const SectorSpan span = cover_sectors(4000, 8400, 4096);
  expect_plan(plan_rmw(span, {0, 0}),
              {{Kind::whole, 4096, 12288}, {Kind::compare, 3584, 4096}, {Kind::compare, 12288, 12800}});
  // Some units of the partial sectors read as zeros: those outside the request get filled.
  expect_plan(plan_rmw(span, {1u << 0 | 1u << 7, 1u << 0 | 1u << 1}), {{Kind::whole, 4096, 12288},
                                                                       {Kind::compare, 3584, 4096},
                                                                       {Kind::compare, 12288, 12800},
                                                                       {Kind::fill, 0, 512},
                                                                       {Kind::fill, 12800, 13312}});
}

TEST(RmwPlan, TwoUnitsOfOneSectorCoveredInPartAreTwoCompares) {
  expect_plan(plan_rmw(cover_sectors(500, 100, 4096), {0, 0}), {{Kind::compare, 0, 512}, {Kind::compare, 512, 1024}});
}

TEST(RmwPlan, FiveHundredTwelveByteSectorsNeedNoFills) {
  expect_plan(plan_rmw(cover_sectors(100, 1000, 512), {1, 1}),
              {{Kind::whole, 512, 1024}, {Kind::compare, 0, 512}, {Kind::compare, 1024, 1536}});
}

}  // namespace
}  // namespace rbdluks
