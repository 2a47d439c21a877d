// Scalar formulas of spec §3 steps 7-8, shared by the host and device code.
#pragma once

#include <cstdint>

#include "resrl/base/macros.hpp"
#include "resrl/types/token_weights.hpp"

namespace resrl::detail {

/// Order statistics that a linear-interpolation quantile of n sorted values
/// reads: value = v[lower] + fraction * (v[lower + 1] - v[lower]), the
/// numpy 'linear' / torch.quantile rule with position q (n - 1).
struct quantile_position {
  index_t lower;
  double fraction;
};

RESRL_HD inline quantile_position linear_quantile_position(index_t n, double q) {
  const double pos = q * static_cast<double>(n - 1);
  index_t lower = static_cast<index_t>(pos);  // floor: pos >= 0
  if (lower > n - 1) lower = n - 1;
  double fraction = pos - static_cast<double>(lower);
  if (lower == n - 1) fraction = 0.0;
  return {lower, fraction};
}

RESRL_HD inline double interpolate_quantile(double at_lower, double at_upper, double fraction) {
  return fraction == 0.0 ? at_lower : at_lower + fraction * (at_upper - at_lower);
}

/// Distance -> weight map of one group.
struct distance_to_weight {
  double low = 0.0;
  double range = 1.0;
  double min_weight = 0.1;
  bool degenerate = false;

  RESRL_HD float operator()(float distance) const {
    if (degenerate) return static_cast<float>((min_weight + 1.0) * 0.5);
    double u = (static_cast<double>(distance) - low) / range;
    u = u < 0.0 ? 0.0 : (u > 1.0 ? 1.0 : u);
    return static_cast<float>(min_weight + (1.0 - min_weight) * u);
  }
};

RESRL_HD inline distance_to_weight make_distance_to_weight(double low, double high, double min_weight) {
  distance_to_weight map;
  map.low = low;
  const double spread = high - low;
  map.range = spread > token_weight_constants::range_floor ? spread : token_weight_constants::range_floor;
  map.min_weight = min_weight;
  map.degenerate = map.range < token_weight_constants::degenerate_range;
  return map;
}

}  // namespace resrl::detail
