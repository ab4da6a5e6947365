// round_up and round_down: the one place this code rounds a size or an offset to an alignment (a
// sector, a page, a huge page, a LUKS keyslot area), so the expressions and their edge cases are
// written once.
#pragma once

#include <cstdint>

namespace rbdluks {

// The largest multiple of alignment (> 0) that is <= value.
constexpr uint64_t round_down(uint64_t value, uint64_t alignment) { return value / alignment * alignment; }

// The smallest multiple of alignment (> 0) that is >= value. value + alignment - 1 must not
// overflow, which holds for every size and offset an image can have.
constexpr uint64_t round_up(uint64_t value, uint64_t alignment) { return round_down(value + alignment - 1, alignment); }

}  // namespace rbdluks
