// The units of a reencryption's parallelism: a range cut into chunks (an RBD object each, by
// default) that several threads take in turn, and steps whose reads run one step ahead.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "result.h"

namespace rbdluks {

// Runs fn on the consecutive chunks [begin, end) of [0, length), `chunk` bytes each (the last one
// shorter), on up to `threads` threads, this one included; the first error stops the others at their
// next chunk and is returned. With fewer threads than asked (none left to start), fewer do it all.
Status for_each_chunk(uint64_t length, uint64_t chunk, unsigned threads,
                      const std::function<Status(uint64_t begin, uint64_t end)>& fn);

// Runs step(i) for i in [0, count) in order, while read(i + 1) runs beside it on another thread
// (read(0) first, alone). read(i) and step(i) share what the caller keeps for i % 2; so read(i + 1)
// must not touch what step(i) changes. The first error stops it, once a read ahead has ended.
Status pipeline_steps(size_t count, const std::function<Status(size_t)>& read,
                      const std::function<Status(size_t)>& step);

// The same over hotzones [at, at + length): read(zone) fills a Zone (a struct with `at` and
// `length`, set before) one hotzone ahead, and step(zone) writes it.
template <typename Zone>
Status pipeline_zones(const std::vector<std::pair<uint64_t, uint64_t>>& zones, const std::function<Status(Zone&)>& read,
                      const std::function<Status(Zone&)>& step) {
  std::array<Zone, 2> buffers;
  const auto read_at = [&](size_t i) {
    Zone& zone = buffers[i % 2];
    zone.at = zones[i].first;
    zone.length = zones[i].second;
    return read(zone);
  };
  return pipeline_steps(zones.size(), read_at, [&](size_t i) { return step(buffers[i % 2]); });
}

}  // namespace rbdluks
