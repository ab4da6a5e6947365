// BufferPool: alignment, the bound on buffers in use (blocking until one is returned), reuse, and
// huge pages for buffers of 2 MiB and more.
#include "buffer_pool.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

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

TEST(BufferPool, TheLastBufferReturnedIsTheFirstReused) {
  BufferPool pool(4096, 3);
  auto a = pool.acquire();
  std::optional<BufferPool::Lease> b = pool.acquire();
  std::optional<BufferPool::Lease> c = pool.acquire();
  EXPECT_NE(a.span().data(), b->span().data());
  EXPECT_NE(b->span().data(), c->span().data());
  uint8_t* const last = b->span().data();
  c.reset();
  b.reset();
  EXPECT_EQ(pool.acquire().span().data(), last) << "the warmest buffer in cache";
}

TEST(BufferPool, AcquireBlocksUntilALeaseEnds) {
  BufferPool pool(4096, 1);
  auto held = pool.acquire();
  expect_blocks_until([&] { auto lease = pool.acquire(); }, [&] { auto drop = std::move(held); });
}

}  // namespace
}  // namespace rbdluks
