// RangeLock: exclusion of overlapping ranges, concurrency of disjoint ones, first-come-first-served
// order among overlapping requests, and the asynchronous form.
#include "range_lock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "test_support.h"

namespace rbdluks {
namespace {

using Mode = RangeLock::Mode;

TEST(RangeLock, DisjointRangesDoNotConflict) {
  RangeLock locks;
  auto held = locks.lock(0, 10);
  EXPECT_TRUE(held.owns_lock());
  EXPECT_TRUE(locks.try_lock(10, 20).has_value());  // end is exclusive
  EXPECT_FALSE(locks.try_lock(9, 11).has_value());
  EXPECT_FALSE(locks.try_lock(0, 1).has_value());
  EXPECT_TRUE(locks.try_lock(5, 5).has_value());  // an empty range overlaps nothing
}

TEST(RangeLock, SharedRangesShareButExcludeExclusive) {
  RangeLock locks;
  auto reader = locks.lock(0, 10, Mode::shared);
  auto other_reader = locks.try_lock(5, 15, Mode::shared);
  ASSERT_TRUE(other_reader.has_value());
  EXPECT_FALSE(locks.try_lock(12, 13, Mode::exclusive).has_value());
  other_reader->release();
  EXPECT_FALSE(other_reader->owns_lock());
  EXPECT_TRUE(locks.try_lock(12, 13, Mode::exclusive).has_value());
  EXPECT_FALSE(locks.try_lock(9, 13, Mode::exclusive).has_value());
}

TEST(RangeLock, GuardReleasesOnceWhenMoved) {
  RangeLock locks;
  RangeLock::Guard outer;
  {
    auto inner = locks.lock(0, 8);
    outer = std::move(inner);
  }
  EXPECT_FALSE(locks.try_lock(0, 8).has_value()) << "the moved-from guard released the range";
  outer = RangeLock::Guard();
  EXPECT_TRUE(locks.try_lock(0, 8).has_value());
}

TEST(RangeLock, BlockingLockWaitsForOverlappingRelease) {
  RangeLock locks;
  auto held = locks.lock(0, 100);
  expect_blocks_until([&] { auto guard = locks.lock(50, 150); }, [&] { held.release(); });
}

TEST(RangeLock, WaitingRequestIsNotOvertakenByLaterOverlappingOnes) {
  RangeLock locks;
  std::vector<std::string> order;
  auto reader = locks.lock(0, 100, Mode::shared);

  RangeLock::Guard writer_guard;
  locks.lock_async(0, 100, Mode::exclusive, [&](RangeLock::Guard g) {
    order.push_back("writer");
    writer_guard = std::move(g);
  });
  EXPECT_TRUE(order.empty());

  // Compatible with the granted reader, but the writer queued first: no starvation of writers.
  EXPECT_FALSE(locks.try_lock(0, 10, Mode::shared).has_value());
  locks.lock_async(0, 10, Mode::shared, [&](RangeLock::Guard) { order.push_back("late reader"); });
  // Outside the writer's range nothing waits.
  EXPECT_TRUE(locks.try_lock(100, 200, Mode::exclusive).has_value());

  reader.release();
  ASSERT_EQ(order, std::vector<std::string>{"writer"});
  writer_guard.release();
  EXPECT_EQ(order, (std::vector<std::string>{"writer", "late reader"}));
  EXPECT_TRUE(locks.try_lock(0, 100).has_value());
}

TEST(RangeLock, AsyncRequestRunsAtOnceWhenFreeAndKeepsItsGuard) {
  RangeLock locks;
  bool ran = false;
  RangeLock::Guard kept;
  locks.lock_async(0, 4, Mode::exclusive, [&](RangeLock::Guard g) {
    ran = true;
    kept = std::move(g);
  });
  EXPECT_TRUE(ran);
  EXPECT_FALSE(locks.try_lock(3, 4).has_value());
  kept.release();
  EXPECT_TRUE(locks.try_lock(3, 4).has_value());
}

TEST(RangeLock, AsyncCallbackRunsInReleasingThreadAndMayChainRequests) {
  RangeLock locks;
  auto held = locks.lock(0, 10);
  std::thread::id ran_in;
  int chained = 0;
  locks.lock_async(0, 10, Mode::exclusive, [&](RangeLock::Guard g) {
    ran_in = std::this_thread::get_id();
    // Queue behind itself, then drop the guard: the chained request must be granted next.
    locks.lock_async(0, 10, Mode::exclusive, [&](RangeLock::Guard) { ++chained; });
    EXPECT_EQ(chained, 0);
    g.release();
    EXPECT_EQ(chained, 1);
  });
  std::thread releaser([&] { held.release(); });
  const auto releaser_id = releaser.get_id();
  releaser.join();
  EXPECT_EQ(ran_in, releaser_id);
  EXPECT_EQ(chained, 1);
  EXPECT_TRUE(locks.try_lock(0, 10).has_value());
}

// Threads lock random overlapping ranges in both modes and record who is inside each unit; any
// writer overlapping another holder is a violation. Blocking and async requests are mixed.
TEST(RangeLock, StressNeverGrantsConflictingRanges) {
  constexpr int kUnits = 64;
  RangeLock locks;
  std::array<std::atomic<int>, kUnits> inside{};  // -1 writer, n > 0 readers
  std::atomic<int> violations{0};
  std::atomic<int> grants{0};

  auto enter = [&](uint64_t b, uint64_t e, Mode mode) {
    for (uint64_t u = b; u < e; ++u) {
      if (mode == Mode::exclusive) {
        int expected = 0;
        if (!inside[u].compare_exchange_strong(expected, -1)) ++violations;
      } else if (inside[u].fetch_add(1) < 0) {
        ++violations;
      }
    }
  };
  auto leave = [&](uint64_t b, uint64_t e, Mode mode) {
    for (uint64_t u = b; u < e; ++u) {
      if (mode == Mode::exclusive)
        inside[u] = 0;
      else
        inside[u].fetch_sub(1);
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 3000; ++i) {
        const uint64_t b = rng() % kUnits;
        const uint64_t e = std::min<uint64_t>(kUnits, b + 1 + rng() % 8);
        const Mode mode = rng() % 3 == 0 ? Mode::shared : Mode::exclusive;
        auto critical = [&](RangeLock::Guard) {
          enter(b, e, mode);
          ++grants;
          std::this_thread::yield();
          leave(b, e, mode);
        };
        if (i % 2 == 0) {
          critical(locks.lock(b, e, mode));
        } else {
          std::atomic<bool> done{false};
          locks.lock_async(b, e, mode, [&](RangeLock::Guard g) {
            critical(std::move(g));
            done = true;
          });
          while (!done) std::this_thread::yield();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(grants.load(), 4 * 3000);
}

}  // namespace
}  // namespace rbdluks
