// Layer normalisation of one hidden vector without affine parameters
// (spec §3 step 3). Statistics are taken in the compute type with Eigen's
// vectorised reductions; when they overflow (fp32 squares of |x| > 1.8e19)
// they are taken again in double, so inputs up to FLT_MAX are fine and only
// NaN or Inf in x is reported.
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
  const C n = static_cast<C>(features);
  C mean = o.sum() / n;
  C var = (o - mean).square().sum() / n;
  if (!std::isfinite(mean) || !std::isfinite(var)) {
    const double mean_d = o.template cast<double>().sum() / static_cast<double>(features);
    if (!std::isfinite(mean_d)) return false;
    const double var_d = (o.template cast<double>() - mean_d).square().sum() / static_cast<double>(features);
    if (!std::isfinite(var_d)) return false;
    const double inv_std = 1.0 / std::sqrt(var_d + token_weight_constants::layer_norm_eps);
    o = ((o.template cast<double>() - mean_d) * inv_std).template cast<C>();
    return true;
  }
  o = (o - mean) * static_cast<C>(1.0 / std::sqrt(static_cast<double>(var) + token_weight_constants::layer_norm_eps));
  return true;
}

}  // namespace resrl::cpu::detail
