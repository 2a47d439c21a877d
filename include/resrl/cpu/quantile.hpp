// Linear-interpolation quantiles by selection (O(n), no full sort).
#pragma once

#include <algorithm>

#include "resrl/core/token_weight_math.hpp"

namespace resrl::cpu::detail {

/// Quantile q of values[0, n) (n >= 1); reorders `values`.
inline double select_quantile(float* values, index_t n, double q) {
  const auto pos = ::resrl::detail::linear_quantile_position(n, q);
  std::nth_element(values, values + pos.lower, values + n);
  const double at_lower = values[pos.lower];
  if (pos.fraction == 0.0) return at_lower;
  // After nth_element everything past `lower` is >= it: the next order
  // statistic is their minimum.
  const double at_upper = *std::min_element(values + pos.lower + 1, values + n);
  return ::resrl::detail::interpolate_quantile(at_lower, at_upper, pos.fraction);
}

}  // namespace resrl::cpu::detail
