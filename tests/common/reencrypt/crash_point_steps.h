// The run options of the crash-point tests of reencryption and encryption: small hotzones of several
// writes each, on one thread, so that a run makes many changes in a fixed order.
#pragma once

#include <cstdint>

#include "reencryption.h"

namespace rbdluks {

inline ReencryptOptions crash_point_steps(uint64_t hotzone_bytes) {
  ReencryptOptions options;
  options.hotzone_bytes = hotzone_bytes;
  options.threads = 1;                   // changes in a fixed order
  options.io_bytes = hotzone_bytes / 4;  // several writes per hotzone, which a crash may tear apart
  options.minimal_digest_cost = true;
  return options;
}

}  // namespace rbdluks
