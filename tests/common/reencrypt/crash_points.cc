// The crash-point loop (crash_points.h).
#include "crash_points.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "fault_injecting_image.h"

namespace rbdluks {
namespace {

// Which unflushed writes a crash keeps: none and all; thorough: also the first and every other.
std::vector<std::vector<bool>> kept_writes(size_t k, bool thorough) {
  std::vector<std::vector<bool>> keeps = {std::vector<bool>(k, false), std::vector<bool>(k, true)};
  if (thorough && k > 1) {
    std::vector<bool> first_only(k, false);
    std::vector<bool> every_other(k, false);
    first_only[0] = true;
    for (size_t i = 0; i < k; i += 2) every_other[i] = true;
    keeps.push_back(first_only);
    keeps.push_back(every_other);
  }
  return keeps;
}

// RBDLUKS_CRASH_POINT_STRIDE=k checks every k-th change (the first, the 1+k-th, ...) and the last
// only: the sanitizer stage of run-tests.sh sets it to stay within CI's time, and the plain build,
// which leaves it unset, checks every change.
uint64_t crash_point_stride() {
  const char* value = std::getenv("RBDLUKS_CRASH_POINT_STRIDE");
  const uint64_t stride = value != nullptr ? std::strtoull(value, nullptr, 10) : 1;
  return std::max<uint64_t>(stride, 1);
}

}  // namespace

std::vector<uint8_t> whole_image(RawImage& image) {
  auto size = image.size();
  EXPECT_TRUE(size);
  std::vector<uint8_t> bytes(size ? *size : 0);
  EXPECT_TRUE(image.read(0, bytes));
  return bytes;
}

void check_crash_points(RawImage& image, const CrashPoints& points) {
  uint64_t changes = 0;
  points.put_back();  // every run starts from the same image, holes included
  {
    FaultInjectingImage counting(image, 0, FaultInjectingImage::Mode::crash);
    auto first = points.run(counting);
    ASSERT_TRUE(first) << first.error().message();
    changes = counting.changes();
  }
  ASSERT_GE(changes, points.min_changes);
  const uint64_t stride = crash_point_stride();
  for (uint64_t n = 1; n <= changes; ++n) {
    if ((n - 1) % stride != 0 && n != changes) continue;
    for (const auto mode : {FaultInjectingImage::Mode::fail_once, FaultInjectingImage::Mode::crash}) {
      if (!points.thorough && mode == FaultInjectingImage::Mode::fail_once) continue;
      std::vector<std::vector<bool>> keeps = {{}};
      if (mode == FaultInjectingImage::Mode::crash) {
        points.put_back();
        FaultInjectingImage probe(image, n, mode);
        static_cast<void>(points.run(probe));
        keeps = kept_writes(probe.unflushed_writes(), points.thorough);
      }
      for (const auto& keep : keeps) {
        points.put_back();
        const std::string context = std::string(mode == FaultInjectingImage::Mode::crash ? "crash" : "error") +
                                    " at change " + std::to_string(n) + " of " + std::to_string(changes) +
                                    ", unflushed kept " + std::to_string(std::count(keep.begin(), keep.end(), true));
        {
          FaultInjectingImage faulty(image, n, mode);
          EXPECT_FALSE(points.run(faulty)) << context;
          if (mode == FaultInjectingImage::Mode::crash) {
            ASSERT_TRUE(faulty.keep_unflushed(keep)) << context;
          }
        }
        auto finished = points.run(image);
        ASSERT_TRUE(finished) << context << ": " << finished.error().message();
        points.expect_finished(context);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

}  // namespace rbdluks
