// The crash points of a reencryption, an encryption or a decryption: run options that make a run's
// changes many and ordered, and the loop that fails the run at each of them (FaultInjectingImage)
// and checks that a second run on the real image finishes the job; and the whole image's bytes,
// which the cases compare.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "raw_image.h"
#include "reencryption.h"

namespace rbdluks {

// Small hotzones of several writes each, on one thread, so that a run makes many changes in a
// fixed order.
inline ReencryptOptions crash_point_steps(uint64_t hotzone_bytes) {
  ReencryptOptions options;
  options.hotzone_bytes = hotzone_bytes;
  options.threads = 1;                   // changes in a fixed order
  options.io_bytes = hotzone_bytes / 4;  // several writes per hotzone, which a crash may tear apart
  options.minimal_digest_cost = true;
  return options;
}

// Every byte of the image, for comparisons (with gtest assertions).
std::vector<uint8_t> whole_image(RawImage& image);

struct CrashPoints {
  // One run on the image given (the real one, or the faulty one over it).
  std::function<Result<ReencryptReport>(RawImage&)> run;
  // Makes the real image what it was before the first run (with gtest assertions).
  std::function<void()> put_back;
  // Checks the real image after a run finished (with gtest assertions; context says which case).
  std::function<void(const std::string& context)> expect_finished;
  uint64_t min_changes = 20;  // a first run must make at least this many, or the test proves little
  // Also fail each change once as an I/O error, and keep only the first unflushed write or every
  // other one; without it, a crash keeps none or all of them.
  bool thorough = true;
};

// For every change n of a first run: the run fails at n (a crash that keeps some of the writes not
// yet flushed; thorough: also an I/O error it must survive), then a second run on the real image
// must succeed and leave it as expect_finished says. Stops at the first fatal failure.
void check_crash_points(RawImage& image, const CrashPoints& points);

}  // namespace rbdluks
