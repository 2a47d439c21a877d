// Layer normalisation of one hidden vector without affine parameters
// (spec §3 step 3). Statistics are taken in the compute type with Eigen's
// vectorised reductions; when they overflow (fp32 squares of |x| > 1.8e19,
// double squares of |x| > 1.3e154) they are taken again in double on x scaled
// by max|x|, so every finite input is fine and only NaN or Inf is reported.
#pragma once

#include <cmath>

#include <Eigen/Core>

#include "resrl/types/token_weights.hpp"

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
    // Slow path: statistics in double of x / max|x|, so that even double
    // inputs near DBL_MAX neither overflow their squares nor lose the scale:
    // layernorm(x) = (y - mean(y)) / sqrt(var(y) + eps / s^2) with y = x / s.
    const auto xd = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(x, features).template cast<double>();
    if (!xd.allFinite()) return false;  // (maxCoeff would skip a NaN)
    const double scale = xd.abs().maxCoeff();
    o = (xd / scale).template cast<C>();  // |y| <= 1: no range lost in C
    const double mean_y = o.template cast<double>().sum() / static_cast<double>(features);
    const double var_y = (o.template cast<double>() - mean_y).square().sum() / static_cast<double>(features);
    const double eps_y = token_weight_constants::layer_norm_eps / scale / scale;  // 0 once s > ~1e157
    const double denom = std::sqrt(var_y + eps_y);
    if (!(denom > 0.0)) {  // a constant row at a scale where eps underflows: layernorm gives 0
      o.setZero();
      return true;
    }
    o = ((o.template cast<double>() - mean_y) / denom).template cast<C>();
    return true;
  }
  o = (o - mean) * static_cast<C>(1.0 / std::sqrt(static_cast<double>(var) + token_weight_constants::layer_norm_eps));
  return true;
}

}  // namespace resrl::cpu::detail
