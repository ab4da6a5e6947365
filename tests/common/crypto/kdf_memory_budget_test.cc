// The process-wide ceiling on argon2 memory: derivations wait while their memory does not fit beside
// the running ones, one too large for the ceiling still runs alone, and the environment's value
// parses as documented.
#include "kdf_memory_budget.h"

#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "kdf.h"
#include "test_support.h"

namespace rbdluks {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

TEST(KdfMemoryBudget, ASecondDerivationWaitsUntilTheFirstGivesItsMemoryBack) {
  KdfMemoryBudget budget(1024 * kMiB);
  std::optional<KdfMemoryBudget::Lease> first(budget.acquire(600 * kMiB));
  EXPECT_EQ(budget.in_use(), 600 * kMiB);
  expect_blocks_until([&] { const auto second = budget.acquire(600 * kMiB); }, [&] { first.reset(); });
  EXPECT_EQ(budget.in_use(), 0u);
}

TEST(KdfMemoryBudget, DerivationsThatFitTogetherRunTogether) {
  KdfMemoryBudget budget(1024 * kMiB);
  const auto first = budget.acquire(512 * kMiB);
  std::thread([&] {
    const auto second = budget.acquire(512 * kMiB);
    EXPECT_EQ(budget.in_use(), 1024 * kMiB);
  }).join();
}

TEST(KdfMemoryBudget, OneDerivationAboveTheCeilingRunsAloneRatherThanNever) {
  KdfMemoryBudget budget(256 * kMiB);
  std::optional<KdfMemoryBudget::Lease> large(budget.acquire(1024 * kMiB));
  expect_blocks_until([&] { const auto small = budget.acquire(kMiB); }, [&] { large.reset(); });
}

TEST(KdfMemoryBudget, RaisingTheCeilingWakesAWaiter) {
  KdfMemoryBudget budget(100 * kMiB);
  const auto first = budget.acquire(100 * kMiB);
  expect_blocks_until([&] { const auto second = budget.acquire(100 * kMiB); }, [&] { budget.set_limit(0); });
}

// The KDF benchmark holds a lease while it times a derivation, which takes one too.
TEST(KdfMemoryBudget, AThreadHoldingALeaseIsNotMadeToWaitForItself) {
  KdfMemoryBudget budget(100 * kMiB);
  const auto outer = budget.acquire(100 * kMiB);
  const auto inner = budget.acquire(100 * kMiB);  // would wait forever if counted again
  EXPECT_EQ(budget.in_use(), 100 * kMiB);
}

TEST(KdfMemoryBudget, EnvironmentValueParses) {
  EXPECT_EQ(KdfMemoryBudget::parse_limit("1073741824", 7), 1073741824u);
  EXPECT_EQ(KdfMemoryBudget::parse_limit("512M", 7), 512 * kMiB);
  EXPECT_EQ(KdfMemoryBudget::parse_limit("2G", 7), 2048 * kMiB);
  EXPECT_EQ(KdfMemoryBudget::parse_limit("64K", 7), 64u << 10);
  EXPECT_EQ(KdfMemoryBudget::parse_limit("0", 7), 0u);
  for (const char* wrong : {"", "-1", "1T", "12 G", "lots", "99999999999999999999"}) {
    EXPECT_EQ(KdfMemoryBudget::parse_limit(wrong, 7), 7u) << wrong;
  }
  EXPECT_EQ(KdfMemoryBudget::parse_limit(nullptr, 7), 7u);
}

// The budget is what derive_key takes: a derivation waits while the process's budget is spent.
TEST(KdfMemoryBudget, Argon2DerivationsTakeTheirMemoryFromTheProcessBudget) {
  KdfMemoryBudget& budget = KdfMemoryBudget::process();
  const uint64_t limit = budget.limit();
  budget.set_limit(64 * kMiB);
  std::optional<KdfMemoryBudget::Lease> held(budget.acquire(60 * kMiB));
  const KdfParams params{KdfType::argon2id, "", 1, 8192, 1};  // 8 MiB: does not fit beside 60
  const std::vector<uint8_t> salt(32, 1);
  std::vector<uint8_t> out(32);
  expect_blocks_until([&] { ASSERT_TRUE(derive_key(params, salt, salt, out)); }, [&] { held.reset(); });
  budget.set_limit(limit);
}

}  // namespace
}  // namespace rbdluks
