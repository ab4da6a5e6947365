// BufferPool: alignment, the bound on buffers in use, reuse, and blocking until one is returned.
#include "buffer_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace rbdluks {
namespace {

TEST(BufferPool, BuffersAreAlignedAndRoundedUp) {
  BufferPool pool(5000, 2);
  EXPECT_EQ(pool.buffer_bytes(), 8192u);
  auto lease = pool.acquire();
  EXPECT_EQ(lease.span().size(), 8192u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(lease.span().data()) % BufferPool::kAlignment, 0u);
}

TEST(BufferPool, AtMostCountBuffersAreOnLoanAndReturnedOnesAreReused) {
  BufferPool pool(4096, 2);
  auto a = pool.try_acquire();
  auto b = pool.try_acquire();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->span().data(), b->span().data());
  EXPECT_FALSE(pool.try_acquire().has_value());
  uint8_t* const returned = b->span().data();
  b.reset();
  auto c = pool.try_acquire();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->span().data(), returned);
}

TEST(BufferPool, AcquireBlocksUntilALeaseEnds) {
  BufferPool pool(4096, 1);
  auto held = pool.acquire();
  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    auto lease = pool.acquire();
    acquired = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(acquired.load());
  { auto drop = std::move(held); }
  waiter.join();
  EXPECT_TRUE(acquired.load());
}

}  // namespace
}  // namespace rbdluks
