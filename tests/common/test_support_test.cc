// The test helpers' own checks, where a helper that passed wrongly would hide a bug in the code
// under test: expect_blocks_until fails a call that does not wait for its release, also when the
// call is merely slow, and passes one that does.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "test_support.h"

namespace rbdluks {
namespace {

using namespace std::chrono_literals;

TEST(ExpectBlocksUntil, FailsACallThatReturnsAtOnce) {
  EXPECT_NONFATAL_FAILURE(expect_blocks_until([] {}, [] {}), "returned without waiting");
}

TEST(ExpectBlocksUntil, FailsACallThatSleepsInsteadOfWaiting) {
  EXPECT_NONFATAL_FAILURE(expect_blocks_until([] { std::this_thread::sleep_for(200ms); }, [] {}),
                          "returned without waiting");
}

TEST(ExpectBlocksUntil, FailsACallThatComputesInsteadOfWaiting) {
  EXPECT_NONFATAL_FAILURE(expect_blocks_until(
                              [] {
                                const auto end = std::chrono::steady_clock::now() + 200ms;
                                while (std::chrono::steady_clock::now() < end) {
                                }
                              },
                              [] {}),
                          "returned without waiting");
}

TEST(ExpectBlocksUntil, PassesACallThatWaitsForTheRelease) {
  std::mutex mutex;
  std::condition_variable released;
  bool open = false;
  expect_blocks_until(
      [&] {
        std::unique_lock lock(mutex);
        released.wait(lock, [&] { return open; });
      },
      [&] {
        const std::lock_guard lock(mutex);
        open = true;
        released.notify_all();
      });
}

}  // namespace
}  // namespace rbdluks
