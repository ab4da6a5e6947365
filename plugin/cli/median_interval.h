// The median of a benchmark's rounds and how far it can be trusted: a distribution-free 95%
// confidence interval for the true median, so that a reader of `bench io` can tell a miss from
// the host's noise.
#pragma once

#include <optional>
#include <vector>

namespace rbdluks {

double median(std::vector<double> values);

struct MedianInterval {
  double low;
  double high;
};

// The k-th smallest and the k-th largest of n values bracket the true median with probability
// 1 - 2 P(Bin(n, 1/2) < k), whatever the distribution, as long as the values are independent draws.
// k is the largest that keeps that at least 95%. Fewer than 6 values cannot reach 95%: nullopt.
std::optional<MedianInterval> median_interval(std::vector<double> values);

}  // namespace rbdluks
