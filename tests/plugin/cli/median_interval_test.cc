// median and median_interval: the order statistics the interval picks for the round counts `bench
// io` uses, too few values, and by simulation that the interval covers a known median at least 95%
// of the time (and not far more, which would mean it picked needlessly wide ranks).
#include "median_interval.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace rbdluks {
namespace {

// 1..n, shuffled: the k-th smallest value is k.
std::vector<double> ranks(size_t n) {
  std::vector<double> values(n);
  std::iota(values.begin(), values.end(), 1.0);
  std::shuffle(values.begin(), values.end(), std::mt19937(7));
  return values;
}

TEST(Median, OddAndEvenCounts) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(median({5}), 5);
}

TEST(MedianInterval, PicksTheRanksOfTheBinomialTail) {
  // n = 15: P(X <= 3) = 576 / 32768 = 1.8%, P(X <= 4) = 5.9%, so the 4th and 12th values.
  auto fifteen = median_interval(ranks(15));
  ASSERT_TRUE(fifteen);
  EXPECT_EQ(fifteen->low, 4);
  EXPECT_EQ(fifteen->high, 12);
  // n = 31: P(X <= 9) = 1.5%, P(X <= 10) = 3.5%, so the 10th and 22nd.
  auto thirty_one = median_interval(ranks(31));
  ASSERT_TRUE(thirty_one);
  EXPECT_EQ(thirty_one->low, 10);
  EXPECT_EQ(thirty_one->high, 22);
  // n = 6: the extremes alone cover with 1 - 2/64 = 96.9%.
  auto six = median_interval(ranks(6));
  ASSERT_TRUE(six);
  EXPECT_EQ(six->low, 1);
  EXPECT_EQ(six->high, 6);
}

TEST(MedianInterval, TooFewValuesGiveNone) {
  EXPECT_FALSE(median_interval(ranks(5)));  // the extremes cover 1 - 2/32 = 93.75%
  EXPECT_FALSE(median_interval({}));
}

TEST(MedianInterval, CoversAKnownMedianAtLeastNinetyFivePercentOfTheTime) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> skewed(0.0, 0.5);  // median exp(0) = 1, skewed like throughput
  for (const size_t n : {9u, 15u, 31u}) {
    int covered = 0;
    const int trials = 20000;
    for (int t = 0; t < trials; ++t) {
      std::vector<double> values(n);
      for (double& v : values) v = skewed(rng);
      const auto interval = median_interval(values);
      ASSERT_TRUE(interval);
      covered += interval->low <= 1.0 && 1.0 <= interval->high;
    }
    const double coverage = static_cast<double>(covered) / trials;
    EXPECT_GE(coverage, 0.95) << n << " values";
    EXPECT_LE(coverage, 0.99) << n << " values";
  }
}

}  // namespace
}  // namespace rbdluks
