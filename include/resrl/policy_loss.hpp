// Clipped PPO policy loss (spec §6) with the exact gradient with respect to
// per-token log-probabilities, for trainers without autograd.
//
// Per valid token: ratio = exp(clamp(logp - old_logp, -20, 20));
// l1 = -A ratio; l2 = -A clamp(ratio, 1 - clip_low, 1 + clip_high);
// c1 = max(l1, l2); loss = min(-A clip_ratio_c, c1) where A < 0, else c1.
// Tokens are aggregated by `policy_loss_params::aggregation`; entropy bonus
// and KL loss are added when their coefficients are nonzero. Gradients are 0
// wherever a clamp or clip is active, and at masked positions.
#pragma once

#include "resrl/cpu/policy_loss.hpp"

namespace resrl {

template <class Real, class Mask>
policy_loss_result policy_loss(const host_executor& exec, const policy_loss_inputs<Real, Mask>& in,
                               const policy_loss_params& params, const policy_loss_gradients<Real>& grad = {}) {
  return cpu::policy_loss(exec, in, params, grad);
}

}  // namespace resrl
