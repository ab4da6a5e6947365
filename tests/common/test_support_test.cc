// The test helpers' own checks, where a helper that passed wrongly would hide a bug in the code
// under test: expect_blocks_until fails a call that does not wait for its release, also when the
// call is merely slow, and passes one that does; RBDLUKS_SKIP_UNLESS fails under
// RBDLUKS_REQUIRE_ALL=1.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
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

void needs_what_is_missing() { RBDLUKS_SKIP_UNLESS(false, "the tool is missing"); }

TEST(SkipUnless, FailsWhenEverythingIsRequired) {
  const char* before = std::getenv("RBDLUKS_REQUIRE_ALL");
  const std::optional<std::string> saved = before != nullptr ? std::optional<std::string>(before) : std::nullopt;
  setenv("RBDLUKS_REQUIRE_ALL", "1", 1);
  EXPECT_FATAL_FAILURE(needs_what_is_missing(), "the tool is missing (RBDLUKS_REQUIRE_ALL=1");
  saved ? setenv("RBDLUKS_REQUIRE_ALL", saved->c_str(), 1) : unsetenv("RBDLUKS_REQUIRE_ALL");
}

}  // namespace
}  // namespace rbdluks
