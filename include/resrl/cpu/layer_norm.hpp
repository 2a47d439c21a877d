// Layer normalisation of one hidden vector without affine parameters
// (spec §3 step 3). Statistics are taken in double whatever the input type:
// fp32 inputs up to FLT_MAX cannot overflow the sum of squares, and a large
// mean does not eat the variance.
#pragma once

#include <cmath>

#include <Eigen/Core>

#include "resrl/token_weights_types.hpp"

namespace resrl::cpu::detail {

template <class C>
using array_map = Eigen::Map<Eigen::Array<C, Eigen::Dynamic, 1>>;

/// Writes layernorm(x) (length `features`) to `out`. Returns false, leaving
/// `out` unspecified, when x holds NaN or Inf.
template <class T, class C>
bool layer_norm_row(const T* x, index_t features, C* out) {
  array_map<C> o(out, features);
  o = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x, features).template cast<C>();
  const double n = static_cast<double>(features);
  const double mean = o.template cast<double>().sum() / n;
  if (!std::isfinite(mean)) return false;
  const double var = (o.template cast<double>() - mean).square().sum() / n;
  if (!std::isfinite(var)) return false;
  const double inv_std = 1.0 / std::sqrt(var + token_weight_constants::layer_norm_eps);
  o = ((o.template cast<double>() - mean) * inv_std).template cast<C>();
  return true;
}

}  // namespace resrl::cpu::detail
