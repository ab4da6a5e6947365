// The unit of a reencryption's parallelism: a range cut into chunks (an RBD object each, by
// default) that several threads take in turn.
#pragma once

#include <cstdint>
#include <functional>

#include "result.h"

namespace rbdluks {

// Runs fn on the consecutive chunks [begin, end) of [0, length), `chunk` bytes each (the last one
// shorter), on up to `threads` threads, this one included; the first error stops the others at their
// next chunk and is returned. With fewer threads than asked (none left to start), fewer do it all.
Status for_each_chunk(uint64_t length, uint64_t chunk, unsigned threads,
                      const std::function<Status(uint64_t begin, uint64_t end)>& fn);

}  // namespace rbdluks
