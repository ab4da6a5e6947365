// plan_rmw: the whole range first, then the compares, then the fills.
#include "rmw_plan.h"

#include <cassert>

#include "alignment.h"

namespace rbdluks {

RmwPlan plan_rmw(const SectorSpan& span, const std::array<uint32_t, 2>& zero_units_read) {
  RmwPlan plan;
  auto add = [&](RmwWrite::Kind kind, uint64_t begin, uint64_t end) {
    assert(plan.count < plan.writes.size());
    plan.writes[plan.count++] = {kind, begin, end};
  };
  const uint64_t touched_begin = round_down(span.request_begin, kAtomicUnit);
  const uint64_t touched_end = round_up(span.request_end, kAtomicUnit);
  const uint64_t whole_begin = round_up(span.request_begin, kAtomicUnit);
  const uint64_t whole_end = round_down(span.request_end, kAtomicUnit);
  if (whole_begin < whole_end) add(RmwWrite::Kind::whole, whole_begin, whole_end);
  const bool head_partial = span.request_begin != touched_begin;
  if (head_partial) add(RmwWrite::Kind::compare, touched_begin, touched_begin + kAtomicUnit);
  const uint64_t tail_unit = touched_end - kAtomicUnit;
  if (span.request_end != touched_end && !(head_partial && tail_unit == touched_begin)) {
    add(RmwWrite::Kind::compare, tail_unit, touched_end);
  }
  const PartialSectors partial = partial_sectors(span);
  for (size_t i = 0; i < partial.count; ++i) {
    for (uint64_t unit = 0; unit < span.sector_size / kAtomicUnit; ++unit) {
      const uint64_t begin = partial.offsets[i] + unit * kAtomicUnit;
      const bool outside = begin + kAtomicUnit <= touched_begin || begin >= touched_end;
      if (outside && (zero_units_read[i] >> unit & 1) != 0) add(RmwWrite::Kind::fill, begin, begin + kAtomicUnit);
    }
  }
  return plan;
}

}  // namespace rbdluks
