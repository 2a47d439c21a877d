// Per-token formulas of the clipped policy loss and the KL estimators
// (spec §6) with their exact derivatives, shared by the host and device code.
// Derivatives follow autograd's conventions: a clamp passes the gradient on
// its closed interval and blocks it outside; max/min of two equal values
// splits the gradient evenly.
#pragma once

#include <cmath>

#include "resrl/base/macros.hpp"
#include "resrl/types/policy_loss.hpp"

namespace resrl::detail {

struct value_and_slope {
  double value;
  double slope;
};

RESRL_HD inline value_and_slope clamp_with_slope(value_and_slope x, double lo, double hi) {
  if (x.value < lo) return {lo, 0.0};
  if (x.value > hi) return {hi, 0.0};
  return x;
}

RESRL_HD inline value_and_slope max_with_slope(value_and_slope a, value_and_slope b) {
  if (a.value > b.value) return a;
  if (b.value > a.value) return b;
  return {a.value, 0.5 * (a.slope + b.slope)};
}

RESRL_HD inline value_and_slope min_with_slope(value_and_slope a, value_and_slope b) {
  if (a.value < b.value) return a;
  if (b.value < a.value) return b;
  return {a.value, 0.5 * (a.slope + b.slope)};
}

/// Loss of one token and its derivative with respect to logp.
struct ppo_token {
  double loss;
  double dloss_dlogp;
  double negative_approx_kl;  // clamp(logp - old_logp, -20, 20)
  bool clipped;               // l2 > l1
  bool clipped_lower;         // dual clip active: c1 > l3 and A < 0
};

RESRL_HD inline ppo_token ppo_token_loss(double logp, double old_logp, double advantage,
                                         const policy_loss_params& p) {
  const value_and_slope nkl = clamp_with_slope({logp - old_logp, 1.0}, -20.0, 20.0);
  const double r = std::exp(nkl.value);
  const value_and_slope ratio{r, r * nkl.slope};
  const value_and_slope clipped = clamp_with_slope(ratio, 1.0 - p.clip_low, 1.0 + p.clip_high);
  const value_and_slope l1{-advantage * ratio.value, -advantage * ratio.slope};
  const value_and_slope l2{-advantage * clipped.value, -advantage * clipped.slope};
  const value_and_slope c1 = max_with_slope(l1, l2);
  ppo_token out{c1.value, c1.slope, nkl.value, l2.value > l1.value, false};
  if (advantage < 0.0) {
    const value_and_slope l3{-advantage * p.clip_ratio_c, 0.0};
    const value_and_slope c2 = min_with_slope(l3, c1);
    out.loss = c2.value;
    out.dloss_dlogp = c2.slope;
    out.clipped_lower = c1.value > l3.value;
  }
  return out;
}

/// KL penalty of one token against the reference policy and its derivative
/// with respect to logp.
RESRL_HD inline value_and_slope kl_token(kl_estimator e, double logp, double ref_logp) {
  const double diff = logp - ref_logp;
  switch (e) {
    case kl_estimator::k1: return {diff, 1.0};
    case kl_estimator::abs: return {diff < 0.0 ? -diff : diff, diff > 0.0 ? 1.0 : (diff < 0.0 ? -1.0 : 0.0)};
    case kl_estimator::k2: return {0.5 * diff * diff, diff};
    case kl_estimator::k3:
    default: {
      const value_and_slope kl = clamp_with_slope({ref_logp - logp, -1.0}, -20.0, 20.0);
      const double e_kl = std::exp(kl.value);
      return clamp_with_slope({e_kl - kl.value - 1.0, (e_kl - 1.0) * kl.slope}, -10.0, 10.0);
    }
  }
}

}  // namespace resrl::detail
