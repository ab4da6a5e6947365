// See median_interval.h.
#include "median_interval.h"

#include <algorithm>
#include <cstddef>

namespace rbdluks {

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  if (n == 0) return 0;
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::optional<MedianInterval> median_interval(std::vector<double> values) {
  const size_t n = values.size();
  // Walk Bin(n, 1/2)'s lower tail: below_k = P(X < k) while it stays within 2.5%.
  double probability = 1;  // P(X = j), starting from 2^-n
  for (size_t i = 0; i < n; ++i) probability /= 2;
  double below_k = 0;
  size_t k = 0;
  while (k < n && below_k + probability <= 0.025) {
    below_k += probability;
    probability = probability * static_cast<double>(n - k) / static_cast<double>(k + 1);
    ++k;
  }
  if (k == 0) return std::nullopt;
  std::sort(values.begin(), values.end());
  return MedianInterval{values[k - 1], values[n - k]};
}

}  // namespace rbdluks
