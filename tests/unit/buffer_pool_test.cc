// BufferPool: alignment, the bound on buffers in use, reuse, blocking until one is returned, and
// the callbacks of acquire_async (at once, or in order in the thread that returns a buffer), and
// huge pages for buffers of 2 MiB and more.
#include "buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace rbdluks {
namespace {

TEST(BufferPool, BuffersAreAlignedAndRoundedUp) {
  BufferPool pool(5000, 2);
  EXPECT_EQ(pool.buffer_bytes(), 8192u);
  auto lease = pool.acquire();
  EXPECT_EQ(lease.span().size(), 8192u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(lease.span().data()) % BufferPool::kAlignment, 0u);
}

// kB of AnonHugePages in the mapping of /proc/self/smaps that holds address.
uint64_t anon_huge_page_kb_at(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2) {
      inside = begin <= at && at < end;
    } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
      return std::stoull(line.substr(std::strlen("AnonHugePages:")));
    }
  }
  return 0;
}

TEST(BufferPool, LargeBuffersSitOnHugePages) {
  BufferPool pool(size_t{4} << 20, 2);
  auto lease = pool.acquire();
  const std::span<uint8_t> buffer = lease.span();
  ASSERT_EQ(reinterpret_cast<uintptr_t>(buffer.data()) % BufferPool::kHugePageBytes, 0u);
  std::memset(buffer.data(), 0xa5, buffer.size());
  EXPECT_EQ(buffer.back(), 0xa5);
  const std::string mode = BufferPool::transparent_huge_pages_mode();
  if (mode != "always" && mode != "madvise") GTEST_SKIP() << "transparent huge pages are '" << mode << "' here";
  EXPECT_GT(anon_huge_page_kb_at(buffer.data()), 0u);
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
  expect_blocks_until([&] { auto lease = pool.acquire(); }, [&] { auto drop = std::move(held); });
}

TEST(BufferPool, AcquireAsyncRunsAtOnceWhenABufferIsFree) {
  BufferPool pool(4096, 1);
  std::optional<BufferPool::Lease> got;
  pool.acquire_async([&](BufferPool::Lease lease) { got.emplace(std::move(lease)); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->span().size(), 4096u);
  EXPECT_FALSE(pool.try_acquire().has_value()) << "the async lease counts against the bound";
}

TEST(BufferPool, AcquireAsyncWaitersAreServedInOrderByTheReturningThread) {
  BufferPool pool(4096, 1);
  std::optional<BufferPool::Lease> held = pool.acquire();
  uint8_t* const buffer = held->span().data();
  std::vector<int> order;
  std::optional<BufferPool::Lease> first;
  std::thread::id first_thread;
  pool.acquire_async([&](BufferPool::Lease lease) {
    order.push_back(1);
    first_thread = std::this_thread::get_id();
    first.emplace(std::move(lease));
  });
  pool.acquire_async([&](BufferPool::Lease lease) {
    order.push_back(2);
    EXPECT_EQ(lease.span().data(), buffer);
  });
  EXPECT_TRUE(order.empty()) << "no buffer is free, so nothing runs yet";
  EXPECT_FALSE(pool.try_acquire().has_value());

  std::thread returner([&] { held.reset(); });
  returner.join();
  ASSERT_EQ(order, std::vector<int>{1});
  EXPECT_NE(first_thread, std::this_thread::get_id()) << "the callback ran in the thread that returned the buffer";
  EXPECT_EQ(first->span().data(), buffer);

  first.reset();  // hands the buffer to the second waiter, which drops it again
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_TRUE(pool.try_acquire().has_value()) << "the buffer is free again";
}

}  // namespace
}  // namespace rbdluks
